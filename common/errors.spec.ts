import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { cleanGrpcDetails, MeshError, Status } from './errors.js';

/** A status error as grpc-js raises it on the client side. */
function grpcError(code: Status, details: string): Error {
  return Object.assign(new Error(`${code} ${Status[code]}: ${details}`), {
    code,
    details,
    metadata: new grpc.Metadata(),
  });
}

describe('gRPC status details for people', () => {
  it('cuts the deadline timing breakdown down to the deadline', () => {
    const e = MeshError.from(
      grpcError(
        Status.DEADLINE_EXCEEDED,
        'Deadline exceeded after 5.000s,name resolution: 0.015s,metadata filters: 0.003s,LB pick: 0.010s,remote_addr=127.0.0.1:7001',
      ),
    );
    assert.equal(e.code, Status.DEADLINE_EXCEEDED);
    assert.equal(e.message, 'deadline exceeded after 5.000s');
  });

  it('names the connection error without the load balancer notes', () => {
    assert.equal(
      cleanGrpcDetails(
        'No connection established. Last error: connect ECONNREFUSED 127.0.0.1:7001. Resolution note: ',
      ),
      'connection failed: connect ECONNREFUSED 127.0.0.1:7001',
    );
    assert.equal(
      cleanGrpcDetails('No addresses resolved. Resolution note: DNS failed'),
      'No addresses resolved',
    );
    assert.equal(cleanGrpcDetails('Received RST_STREAM with code 0'), 'the stream was reset by the peer');
  });

  it('passes a server message unchanged', () => {
    const message = 'endpoint 10.0.0.7:7001: engine at 127.0.0.1:8000 answered 503: loading';
    assert.equal(MeshError.from(grpcError(Status.UNAVAILABLE, message)).message, message);
  });

  it('names the engine once in a socket error', () => {
    const reset = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const e = MeshError.from(reset, 'engine at 127.0.0.1:8000');
    assert.equal(e.code, Status.UNAVAILABLE);
    assert.equal(e.message, 'engine at 127.0.0.1:8000 failed: ECONNRESET (socket hang up)');
  });
});
