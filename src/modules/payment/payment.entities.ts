import { Payment } from "./payment.entity.js";

/** The payment module's tables, for the composition root's entity list. */
export const paymentEntities = [Payment];
