/** Parsing of `host:port` addresses as they appear in config and flags. */

/** A parsed listen or endpoint address. */
export interface HostPort {
  host: string;
  port: number;
}

/**
 * Parses `host:port`, `[v6]:port` or `:port` (all interfaces). Throws an Error
 * naming `field` when the address is malformed.
 */
export function parseHostPort(value: string, field = 'address'): HostPort {
  const trimmed = value.trim();
  let host: string;
  let portText: string;
  const v6 = /^\[([^\]]+)\]:(\d+)$/.exec(trimmed);
  if (v6) {
    host = v6[1] ?? '';
    portText = v6[2] ?? '';
  } else {
    const idx = trimmed.lastIndexOf(':');
    if (idx < 0) throw new Error(`${field}: "${value}" is not host:port`);
    host = trimmed.slice(0, idx) || '0.0.0.0';
    portText = trimmed.slice(idx + 1);
    if (host.includes(':')) throw new Error(`${field}: "${value}": write IPv6 addresses as [addr]:port`);
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port < 0 || port > 65535) {
    throw new Error(`${field}: "${value}" has an invalid port`);
  }
  return { host, port };
}

/** Formats host and port back to `host:port` (brackets for IPv6). */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
