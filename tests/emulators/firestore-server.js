// Fallback Firestore emulator for machines without Google's (gcloud's) one: the npm package
// @firestore-emulator/server, bound to 127.0.0.1 (its start() binds 0.0.0.0, so bind here).
// Usage: node firestore-server.js PORT   (NODE_PATH points at the install's node_modules)
"use strict";
const { FirestoreServer } = require("@firestore-emulator/server");
const { ServerCredentials } = require("@grpc/grpc-js");

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node firestore-server.js PORT");
  process.exit(2);
}
const emulator = new FirestoreServer();
emulator.server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err) => {
  if (err) {
    console.error(`cannot listen on 127.0.0.1:${port}: ${err.message}`);
    process.exit(1);
  }
  console.log(`firestore emulator (npm) listening on 127.0.0.1:${port}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    emulator.stop();
    process.exit(0);
  });
}
