/**
 * TLS for the gRPC hops, from certificate files as Kubernetes secrets or
 * cert-manager mount them. Files are watched: a rotated certificate is used
 * for new connections without a restart, and streams in flight are untouched.
 */
import { readFileSync } from 'node:fs';
import { type ChannelCredentials, credentials, experimental, ServerCredentials } from '@grpc/grpc-js';

/** Default interval at which certificate files are re-read. */
export const DEFAULT_CERT_REFRESH_MS = 60_000;

/** Server-side TLS: the server's identity, and a CA when clients must present certificates (mTLS). */
export interface ServerTlsFiles {
  /** PEM certificate chain of this server. */
  certFile: string;
  /** PEM private key of this server. */
  keyFile: string;
  /** PEM CA bundle that client certificates must chain to; set it to require client certificates. */
  clientCaFile?: string;
  refreshIntervalMs?: number;
}

/** Client-side TLS: the CA that server certificates must chain to, and this client's identity for mTLS. */
export interface ClientTlsFiles {
  /** PEM CA bundle; the system roots when absent. */
  caFile?: string;
  /** PEM certificate of this client (mTLS). */
  certFile?: string;
  /** PEM private key of this client (mTLS). */
  keyFile?: string;
  refreshIntervalMs?: number;
}

/**
 * Server credentials: plaintext without `tls`, TLS with it, mutual TLS when
 * `clientCaFile` is set. Throws an Error naming the file when one is unreadable.
 */
export function serverCredentials(tls: ServerTlsFiles | undefined, field = 'tls'): ServerCredentials {
  if (!tls) return ServerCredentials.createInsecure();
  checkReadable(tls.certFile, `${field}.cert_file`);
  checkReadable(tls.keyFile, `${field}.key_file`);
  if (tls.clientCaFile) checkReadable(tls.clientCaFile, `${field}.client_ca_file`);
  const refreshIntervalMs = tls.refreshIntervalMs ?? DEFAULT_CERT_REFRESH_MS;
  const identity = new experimental.FileWatcherCertificateProvider({
    certificateFile: tls.certFile,
    privateKeyFile: tls.keyFile,
    refreshIntervalMs,
  });
  const ca = tls.clientCaFile
    ? new experimental.FileWatcherCertificateProvider({
        caCertificateFile: tls.clientCaFile,
        refreshIntervalMs,
      })
    : null;
  return experimental.createCertificateProviderServerCredentials(identity, ca, Boolean(tls.clientCaFile));
}

/** Channel credentials: plaintext without `tls`, else TLS (with a client certificate when given). */
export function channelCredentials(tls: ClientTlsFiles | undefined, field = 'tls'): ChannelCredentials {
  if (!tls) return credentials.createInsecure();
  if (Boolean(tls.certFile) !== Boolean(tls.keyFile)) {
    throw new Error(`${field}: cert_file and key_file go together (both for mTLS, or neither)`);
  }
  const refreshIntervalMs = tls.refreshIntervalMs ?? DEFAULT_CERT_REFRESH_MS;
  if (!tls.caFile) {
    if (!tls.certFile) return credentials.createSsl();
    checkReadable(tls.certFile, `${field}.cert_file`);
    checkReadable(tls.keyFile ?? '', `${field}.key_file`);
    return credentials.createSsl(null, readFileSync(tls.keyFile ?? ''), readFileSync(tls.certFile));
  }
  checkReadable(tls.caFile, `${field}.ca_file`);
  const ca = new experimental.FileWatcherCertificateProvider({
    caCertificateFile: tls.caFile,
    refreshIntervalMs,
  });
  let identity: experimental.FileWatcherCertificateProvider | null = null;
  if (tls.certFile && tls.keyFile) {
    checkReadable(tls.certFile, `${field}.cert_file`);
    checkReadable(tls.keyFile, `${field}.key_file`);
    identity = new experimental.FileWatcherCertificateProvider({
      certificateFile: tls.certFile,
      privateKeyFile: tls.keyFile,
      refreshIntervalMs,
    });
  }
  return experimental.createCertificateProviderChannelCredentials(ca, identity);
}

function checkReadable(path: string, field: string): void {
  try {
    readFileSync(path);
  } catch (err) {
    throw new Error(
      `${field}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}
