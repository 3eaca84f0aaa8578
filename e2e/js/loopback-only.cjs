// Preloaded (node --require) into the Node processes the end-to-end tests
// start, so that they reach loopback and nothing else: a connection to any
// other host (an update check, telemetry) fails before it resolves the name
// or opens a socket, and the host is appended to the file named by
// SLIPWAY_E2E_OFFHOST_LOG, which the Go test reads and requires empty.
//
// Every TCP client in Node (http, https, tls, fetch) ends in
// net.Socket.prototype.connect, so that is the one place to guard.
'use strict';

const fs = require('node:fs');
const net = require('node:net');

const logFile = process.env.SLIPWAY_E2E_OFFHOST_LOG;

function isLoopback(host) {
  if (host === undefined || host === '' || host === 'localhost') {
    return true; // Node's default host is localhost
  }
  const bare = host.replace(/^\[|\]$/g, '');
  switch (net.isIP(bare)) {
    case 4:
      return bare.startsWith('127.');
    case 6:
      return bare === '::1';
    default:
      return false;
  }
}

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function guardedConnect(...args) {
  // Called as connect(options[, cb]), connect(port[, host][, cb]),
  // connect(path[, cb]), or internally with the normalized [options, cb].
  let opts = Array.isArray(args[0]) ? args[0][0] : args[0];
  if (typeof opts !== 'object' || opts === null) {
    opts = typeof opts === 'string' && !/^\d+$/.test(opts) ? { path: opts } : { host: typeof args[1] === 'string' ? args[1] : undefined };
  }
  // Like net itself: a truthy path is a Unix socket, local by nature.
  if (!opts.path && !isLoopback(opts.host)) {
    const host = String(opts.host);
    if (logFile) {
      fs.appendFileSync(logFile, host + '\n');
    }
    const err = new Error(`e2e: connection to ${host} refused: tests reach loopback only`);
    process.nextTick(() => this.destroy(err));
    return this;
  }
  return connect.apply(this, args);
};
