/** Throwaway certificate authorities and certificates made with openssl, for TLS tests and the security benchmark. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Paths of a CA's files. */
export interface TestCa {
  dir: string;
  certFile: string;
  keyFile: string;
  /** Issues a certificate for `name` (server: SAN 127.0.0.1 and localhost; client: clientAuth). */
  issue(name: string, kind: 'server' | 'client'): { certFile: string; keyFile: string };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe' });
}

/** Creates a CA in a new temporary directory. */
export function createTestCa(name = 'llmmesh-test-ca'): TestCa {
  const dir = mkdtempSync(join(tmpdir(), `${name}-`));
  openssl(
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
    ],
    dir,
  );
  return {
    dir,
    certFile: join(dir, 'ca.crt'),
    keyFile: join(dir, 'ca.key'),
    issue(cn, kind) {
      const ext = join(dir, `${cn}.ext`);
      writeFileSync(
        ext,
        kind === 'server'
          ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'
          : 'extendedKeyUsage=clientAuth\n',
      );
      openssl(
        [
          'req',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-subj',
          `/CN=${cn}`,
          '-keyout',
          `${cn}.key`,
          '-out',
          `${cn}.csr`,
        ],
        dir,
      );
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${cn}.csr`,
          '-CA',
          'ca.crt',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-days',
          '2',
          '-extfile',
          ext,
          '-out',
          `${cn}.crt`,
        ],
        dir,
      );
      return { certFile: join(dir, `${cn}.crt`), keyFile: join(dir, `${cn}.key`) };
    },
  };
}
