/**
 * When a stream's reader counts as behind, for chunk coalescing on both
 * hops (router → client, sidecar → router). A grpc-js write returns false
 * once 16 messages wait for the transport, which a burst of tokens to a
 * reader that keeps up also causes; a reader is behind only when this many
 * messages wait (its HTTP/2 flow-control window is full and the backlog
 * keeps growing). From then until the backlog drains, the chunks that
 * arrive are merged into one message.
 */
export const COALESCE_BACKLOG = 1024;
