/**
 * The SAN's side of socket links: the listener the fabric switch accepts N_Port links on, with
 * the access policy for them (who may connect, how many links one uid may hold). The links
 * themselves, and the connecting side an HBA uses, are src/fc/link.ts.
 */
import type net from 'node:net';
import { SocketLink } from '../fc/link.js';
import { logger, type Logger } from '../util/log.js';
import { listenGated, type PrivateSocket, type SocketAccess } from '../util/private-socket.js';

/**
 * Simultaneous links one uid may hold by default: a bound on the sockets one user can make the SAN
 * hold, set above what a user who behaves can reach (every F_Port logged in plus the switch's queue
 * of links waiting for a login, whose oldest it closes first), so all vports of one host may run as
 * one user and idle connections of that user cannot lock its own HBAs out.
 */
export const DEFAULT_MAX_LINKS_PER_UID = 512;

export interface LinkListenerOptions {
  /** who besides this uid and root may connect (san --socket-group / --socket-owner) */
  access?: SocketAccess;
  /** simultaneous links per uid (default DEFAULT_MAX_LINKS_PER_UID) */
  maxPerUid?: number;
  log?: Logger;
}

/**
 * Listening side: each accepted connection becomes a SocketLink handed to onLink — once its peer
 * passed the checks (src/util/private-socket.ts): allowed uid/gid (SO_PEERCRED) and under the
 * per-uid cap. A refused peer is closed before a byte of it is read.
 */
export class LinkListener {
  private constructor(
    private readonly server: net.Server,
    private readonly socketFile: PrivateSocket,
    readonly path: string,
  ) {}

  static listen(
    path: string,
    onLink: (link: SocketLink) => void,
    options: LinkListenerOptions = {},
  ): Promise<LinkListener> {
    const log = options.log ?? logger('san.link', { socket: path });
    let n = 0;
    return listenGated(
      path,
      {
        ...(options.access ? { access: options.access } : {}),
        maxPerUid: options.maxPerUid ?? DEFAULT_MAX_LINKS_PER_UID,
        what: 'SAN link',
        log,
      },
      (socket) => onLink(new SocketLink(socket, `link ${++n} on ${path}`)),
    ).then(({ server, socketFile }) => new LinkListener(server, socketFile, path));
  }

  /** Stops listening (links already up stay up) and removes the socket file. */
  close(): Promise<void> {
    this.socketFile.unlink();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
