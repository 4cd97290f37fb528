/**
 * The exchange manager of one link (FC-FS-4 exchanges): one `NPortLink` carries the link's physical
 * N_Port (FLOGI) and any NPIV vports (FDISC). It allocates the OX_IDs of the exchanges its ports
 * originate, routes frames sent by an exchange responder (F_CTL EX_CTX set) by OX_ID to that
 * exchange and all other frames by D_ID to the N_Port addressed, and on link loss fails every open
 * exchange and tells every port.
 */
import { F_CTL, FC_XID_UNKNOWN, type FcFrame, decodeFrame, formatPortId } from '../frame.js';
import type { Link } from '../link.js';
import { type Logger, logger } from '../../util/log.js';
import { LinkDownError, ProtocolError } from './errors.js';

/** What the link needs of an N_Port logged in on it (NPort is one). */
export interface PortOnLink {
  readonly nportId: number;
  /** A frame not belonging to an exchange the port originated. */
  receiveUnsolicited(frame: FcFrame): void;
  linkLost(reason: string): void;
}

/** An exchange this N_Port originated; frames from the responder are handed to onFrame. */
export interface OriginatedExchange {
  readonly oxId: number;
  readonly peer: number;
  /** RX_ID learned from the responder's first frame. */
  rxId: number;
  onFrame(frame: FcFrame): void;
  onFail(err: Error): void;
}

export class NPortLink<P extends PortOnLink = PortOnLink> {
  readonly ports = new Map<number, P>();
  private readonly exchanges = new Map<number, OriginatedExchange & { owner: P; loginPending: boolean }>();
  private nextOxId = 1;
  readonly log: Logger;

  constructor(
    readonly link: Link,
    log?: Logger,
  ) {
    this.log = log ?? logger('nport-link', { link: link.description });
    link.on('frame', (bytes) => this.receive(bytes));
    link.on('down', (reason) => this.linkDown(reason));
  }

  get isUp(): boolean {
    return this.link.isUp;
  }

  /** Register an originated exchange under a fresh OX_ID. */
  openExchange(owner: P, loginPending: boolean, make: (oxId: number) => OriginatedExchange): OriginatedExchange {
    if (this.exchanges.size >= FC_XID_UNKNOWN - 1) throw new ProtocolError('no free OX_ID');
    while (this.exchanges.has(this.nextOxId) || this.nextOxId === FC_XID_UNKNOWN)
      this.nextOxId = (this.nextOxId + 1) & 0xffff;
    const ex = make(this.nextOxId);
    this.nextOxId = (this.nextOxId + 1) & 0xffff;
    this.exchanges.set(ex.oxId, Object.assign(ex, { owner, loginPending }));
    return ex;
  }

  closeExchange(oxId: number): void {
    this.exchanges.delete(oxId);
  }

  send(frames: readonly Uint8Array[]): boolean {
    for (const f of frames) if (!this.link.send(f)) return false;
    return true;
  }

  close(reason = 'closed locally'): void {
    this.link.close(reason);
  }

  private receive(bytes: Uint8Array): void {
    let frame: FcFrame;
    try {
      frame = decodeFrame(bytes);
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'malformed frame discarded');
      return;
    }
    const h = frame.header;
    if (h.fCtl & F_CTL.EX_CTX) {
      const ex = this.exchanges.get(h.oxId);
      if (!ex) return;
      const toUs = ex.loginPending ? true : h.dId === ex.owner.nportId;
      if (!toUs || h.sId !== ex.peer) return;
      try {
        ex.onFrame(frame);
      } catch (err) {
        ex.onFail(err as Error);
      }
      return;
    }
    const port = this.ports.get(h.dId);
    if (!port) return;
    try {
      port.receiveUnsolicited(frame);
    } catch (err) {
      this.log.warn({ err: (err as Error).message, dId: formatPortId(h.dId) }, 'error handling a frame');
    }
  }

  private linkDown(reason: string): void {
    const exchanges = [...this.exchanges.values()];
    this.exchanges.clear();
    for (const ex of exchanges) ex.onFail(new LinkDownError(reason));
    const ports = [...this.ports.values()];
    this.ports.clear();
    for (const p of ports) p.linkLost(reason);
  }
}
