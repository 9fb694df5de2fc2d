#!/usr/bin/env node
// Reads one Switchyard value, then follows it live over WatchConfig: one JSON line on
// stdout when it is loaded and one each time it changes; diagnostics go to stderr.
//
//   node index.js [KEY] [ENVIRONMENT]      (or SWITCHYARD_KEY / SWITCHYARD_ENVIRONMENT)
//
// SWITCHYARD_ADDRESS is the server (default 127.0.0.1:50051); SWITCHYARD_TOKEN, when
// set, is sent as `authorization: Bearer <token>`; SWITCHYARD_TLS_CA (and for mutual TLS
// SWITCHYARD_CLIENT_TLS_CERT / _KEY) make the connection TLS, as for the CLI.
//
// The protocol is the one the Python client's LiveConfig follows: read, watch from the
// revision read (so nothing committed in between is lost), and after a broken stream
// resume from the last revision seen.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';

const PROTOS =
  process.env.SWITCHYARD_PROTOS ?? fileURLToPath(new URL('../../protos', import.meta.url));
const CALL_TIMEOUT_MS = 5_000;
// Three of the server's default progress intervals (10 s) without a message: the
// stream is dead even if the connection looks alive.
const PROGRESS_TIMEOUT_MS = 30_000;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 10_000;
// Statuses after which the watch resumes; any other will not get better by retrying.
const RETRIED = new Set([
  grpc.status.UNAVAILABLE, // the server restarted or shut down
  grpc.status.ABORTED, // this watcher fell too far behind
  grpc.status.DEADLINE_EXCEEDED,
  grpc.status.CANCELLED, // by a proxy or the peer (our own cancellations stop first)
  // grpc-js reports a connection the server dropped mid-call (RST_STREAM, GOAWAY) so.
  grpc.status.INTERNAL,
]);

const { values: options, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    key: { type: 'string', short: 'k' },
    env: { type: 'string', short: 'e' },
    address: { type: 'string', short: 'a' },
  },
});
const key = options.key ?? positionals[0] ?? process.env.SWITCHYARD_KEY ?? 'api.timeout';
const environment =
  options.env ?? positionals[1] ?? process.env.SWITCHYARD_ENVIRONMENT ?? 'production';
const address = options.address ?? process.env.SWITCHYARD_ADDRESS ?? '127.0.0.1:50051';
const token = process.env.SWITCHYARD_TOKEN;

// The well-known types (google/protobuf/struct.proto, ...) come with proto-loader;
// config.proto imports nothing from google/api or google/rpc.
const definition = protoLoader.loadSync('switchyard/v1/config.proto', {
  includeDirs: [PROTOS],
  longs: Number, // revisions stay far below 2^53
  enums: String,
  defaults: true,
  oneofs: true,
});
const { ConfigService } = grpc.loadPackageDefinition(definition).switchyard.v1;

function channelCredentials() {
  const {
    SWITCHYARD_TLS_CA: ca,
    SWITCHYARD_CLIENT_TLS_CERT: cert,
    SWITCHYARD_CLIENT_TLS_KEY: certKey,
  } = process.env;
  if (!ca && !cert) return grpc.credentials.createInsecure();
  const read = (file) => (file ? readFileSync(file) : null);
  return grpc.credentials.createSsl(read(ca), read(certKey), read(cert));
}

const client = new ConfigService(address, channelCredentials(), {
  'grpc.keepalive_time_ms': 30_000,
  'grpc.keepalive_timeout_ms': 10_000,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 10_000,
});

const shutdown = new AbortController();
let current; // the value last printed
let revision = 0; // the newest revision seen: from a read, an event or a progress message
let resumeFrom = 0; // where a new stream starts replaying

const log = (message) => console.error(`switchyard-watch: ${message}`);
const print = (event, value, at) =>
  process.stdout.write(`${JSON.stringify({ event, key, environment, value, revision: at })}\n`);

function metadata() {
  const md = new grpc.Metadata();
  if (token) md.set('authorization', `Bearer ${token}`);
  return md;
}

/** A google.protobuf.Value as plain JSON. */
function fromValue(value) {
  switch (value?.kind) {
    case 'numberValue':
    case 'stringValue':
    case 'boolValue':
      return value[value.kind];
    case 'structValue':
      return Object.fromEntries(
        Object.entries(value.structValue.fields ?? {}).map(([name, v]) => [name, fromValue(v)]),
      );
    case 'listValue':
      return (value.listValue.values ?? []).map(fromValue);
    default:
      return null; // nullValue, or no value at all
  }
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

function getValue() {
  return new Promise((resolve, reject) => {
    const call = client.getValue(
      { key, environment },
      metadata(),
      { deadline: Date.now() + CALL_TIMEOUT_MS },
      (error, response) => {
        shutdown.signal.removeEventListener('abort', stop);
        if (error) reject(error);
        else resolve(response);
      },
    );
    const stop = () => call.cancel();
    shutdown.signal.addEventListener('abort', stop, { once: true });
  });
}

/** Reads the value; prints it when it is the first read or differs from the last. */
async function load() {
  let value = null;
  let at = revision;
  let gone = false;
  try {
    const response = await getValue();
    value = fromValue(response.value);
    at = response.revision;
  } catch (error) {
    // A key deleted (or deactivated) while we were away; at startup it is an error.
    if (error.code !== grpc.status.NOT_FOUND || current === undefined) throw error;
    gone = true;
  }
  if (current === undefined) print('loaded', value, at);
  else if (!same(value, current)) print(gone ? 'deleted' : 'changed', value, at);
  current = value;
  revision = Math.max(revision, at);
  resumeFrom = at;
}

/** Follows one WatchConfig stream until it ends (returns) or breaks (throws). */
async function follow(backoff) {
  const call = client.watchConfig(
    { keys: [key], environment, fromRevision: resumeFrom },
    metadata(),
  );
  const stop = () => call.cancel();
  shutdown.signal.addEventListener('abort', stop, { once: true });
  let silent = false;
  let silence;
  const listen = () => {
    clearTimeout(silence);
    silence = setTimeout(() => {
      silent = true;
      call.cancel();
    }, PROGRESS_TIMEOUT_MS);
  };
  listen();
  try {
    for await (const message of call) {
      listen();
      backoff.reset(); // a stream that delivers is a healthy one
      if (message.message === 'progress') {
        revision = Math.max(revision, message.progress.revision);
        resumeFrom = Math.max(resumeFrom, message.progress.revision);
      } else {
        await apply(message.event);
      }
    }
  } catch (error) {
    if (silent) {
      throw Object.assign(new Error(`no message for ${PROGRESS_TIMEOUT_MS / 1000} s`), {
        code: grpc.status.DEADLINE_EXCEEDED,
      });
    }
    throw error;
  } finally {
    clearTimeout(silence);
    shutdown.signal.removeEventListener('abort', stop);
    call.cancel();
  }
}

async function apply(event) {
  if (event.kind === 'CHANGE_KIND_ENVIRONMENT') {
    // The watched environment's parent chain changed: the value may now come from
    // another layer, and no config event says so. Read it again.
    await load();
    return;
  }
  if (event.kind !== 'CHANGE_KIND_CONFIG' || event.key !== key || event.revision < revision) return;
  // Events carry the effective value in the watched environment: no need to read back.
  const value = event.deleted ? null : fromValue(event.value);
  revision = event.revision;
  // Other events of this revision may not have arrived yet: a resume replays it.
  resumeFrom = Math.max(resumeFrom, event.revision - 1);
  if (same(value, current)) return; // a change elsewhere that leaves this value as it was
  current = value;
  print(event.deleted ? 'deleted' : 'changed', value, event.revision);
}

/** Exponential backoff with jitter: 0.1 s doubling to 10 s, drawn from the upper half. */
class Backoff {
  #delay = BACKOFF_FIRST_MS;

  next() {
    const delay = this.#delay;
    this.#delay = Math.min(delay * 2, BACKOFF_MAX_MS);
    return delay / 2 + Math.random() * (delay / 2);
  }

  reset() {
    this.#delay = BACKOFF_FIRST_MS;
  }
}

async function run() {
  const backoff = new Backoff();
  let mustLoad = true;
  while (!shutdown.signal.aborted) {
    try {
      if (mustLoad) {
        await load();
        mustLoad = false;
      }
      await follow(backoff);
      if (shutdown.signal.aborted) break;
      log('the watch stream ended without a status; resuming');
    } catch (error) {
      if (shutdown.signal.aborted) break;
      if (error.code === grpc.status.OUT_OF_RANGE) {
        log(`revision ${resumeFrom} is no longer in the history; reading the value again`);
        mustLoad = true;
      } else if (RETRIED.has(error.code)) {
        const why = error.details ?? error.message;
        log(
          mustLoad
            ? `read failed (${why}); retrying`
            : `watch interrupted (${why}); retrying from revision ${resumeFrom}`,
        );
      } else {
        throw error;
      }
    }
    await sleep(backoff.next(), undefined, { signal: shutdown.signal }).catch(() => {});
  }
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    if (shutdown.signal.aborted) process.exit(1); // a second signal: do not wait
    log(`${signal}: stopping`);
    shutdown.abort();
  });
}

try {
  await run();
} catch (error) {
  const code = error.code === undefined ? '' : `${grpc.status[error.code] ?? error.code}: `;
  log(`${code}${error.details ?? error.message}`);
  process.exitCode = 1;
} finally {
  client.close();
}
