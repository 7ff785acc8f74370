#!/usr/bin/env bash
# Fails when the committed generated files differ from what the sources give:
# gen/ (buf generate from proto/ and third_party/proto/), the browser client's
# copy in packages/client/src/gen, and
# third_party/proto/buf/validate/validate.proto (exported from @bufbuild/protovalidate).
# Regenerates into a temp dir, so the working tree is never touched.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

tsx scripts/export-validate-proto.ts "$tmp/third_party" > /dev/null
buf generate --output "$tmp"
buf generate --template packages/client/buf.gen.yaml --output "$tmp"

status=0
if ! diff -u third_party/proto/buf/validate/validate.proto "$tmp/third_party/buf/validate/validate.proto"; then
  echo "third_party/proto/buf/validate/validate.proto is stale: run npm run export:validate-proto" >&2
  status=1
fi
if ! diff -ru gen "$tmp/gen"; then
  echo "gen/ is stale: run npm run generate and commit the result" >&2
  status=1
fi
if ! diff -ru packages/client/src/gen "$tmp/packages/client/src/gen"; then
  echo "packages/client/src/gen is stale: run npm run generate and commit the result" >&2
  status=1
fi
[ "$status" -eq 0 ] && echo "generated code is up to date"
exit "$status"
