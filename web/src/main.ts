import { createApp } from "./app.js";
import { readConfig } from "./config.js";

const root = document.getElementById("app");
if (root) void createApp(root, readConfig()).start();
