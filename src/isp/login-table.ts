/**
 * The N_Port handle table of one N_Port of the emulated ISP2532 firmware: which remote ports the
 * port is logged in to (PLOGI), under which handle the driver chose, and whether the FCP process
 * login (PRLI) is established. ISP24xx/25xx firmware keeps this table; qla2xxx 10.02.x reads it
 * back as the port database (MBC 0x64 GET_PORT_DATABASE, qla24xx_gpdb / qla2x00_get_port_database)
 * and the port name list (MBC 0x75 PORT_NODE_NAME_LIST, qla24xx_async_gnl), and relies on the
 * firmware's handle / port-ID collision rules when it logs in (qla24xx_login_fabric).
 *
 * One owner: the table is changed only through this API — the Login/Logout IOCB (iocb/logio.ts),
 * the explicit-LOGO ELS IOCB (iocb/els.ts) and the port's fabric session (fabric-session.ts, which
 * empties it when the session ends and drops a login the remote port ended). The well-known
 * handles are entries too: a name-server login (handle 0x7FC) is what lets CT pass-through reach
 * the directory.
 */
import {
  GNL_ENTRY_SIZE,
  PDB_CURRENT_LOGIN_STATE,
  PDB_LAST_LOGIN_STATE,
  PDB_NODE_NAME,
  PDB_NPORT_HANDLE,
  PDB_PORT_ID,
  PDB_PORT_NAME,
  PDB_PRLI_WORD_0,
  PDB_PRLI_WORD_3,
  PDB_RECEIVE_DATA_SIZE,
  PDB_SIZE,
  PDS_PLOGI_COMPLETE,
  PDS_PRLI_COMPLETE,
} from '../../assembly/shared/iocb-mgmt.js';
import { wwnToBytes } from '../util/wwn.js';
import { NPH } from './fw-constants.js';
import { view, writeU24BE, writeU24LE } from '../util/bytes.js';

export interface RemoteLogin {
  handle: number;
  portId: number;
  wwpn: bigint;
  wwnn: bigint;
  receiveDataSize: number;
  /** PRLI accept word 3 (0 while only PLOGI is complete). */
  prliWord3: number;
  prliComplete: boolean;
}

/** What a PLOGI accept tells about the remote port. */
export interface PlogiAccept {
  wwpn: bigint;
  wwnn: bigint;
  receiveDataSize: number;
}

export class LoginTable {
  private readonly byHandle = new Map<number, RemoteLogin>();

  get size(): number {
    return this.byHandle.size;
  }

  has(handle: number): boolean {
    return this.byHandle.has(handle);
  }

  get(handle: number): Readonly<RemoteLogin> | undefined {
    return this.byHandle.get(handle);
  }

  /** Every login, in handle-assignment order. */
  entries(): readonly Readonly<RemoteLogin>[] {
    return [...this.byHandle.values()];
  }

  byPortId(portId: number): Readonly<RemoteLogin> | undefined {
    for (const l of this.byHandle.values()) if (l.portId === portId) return l;
    return undefined;
  }

  /** A PLOGI to portId was accepted: the handle now names that port, PRLI not yet done. */
  recordPlogi(handle: number, portId: number, accept: PlogiAccept): Readonly<RemoteLogin> {
    const login: RemoteLogin = {
      handle,
      portId,
      wwpn: accept.wwpn,
      wwnn: accept.wwnn,
      receiveDataSize: accept.receiveDataSize,
      prliWord3: 0,
      prliComplete: false,
    };
    this.byHandle.set(handle, login);
    return login;
  }

  /** The PRLI for login was accepted with service parameter word 3. */
  prliAccepted(login: Readonly<RemoteLogin>, word3: number): void {
    const l = login as RemoteLogin; // entries handed out are this table's own objects
    l.prliComplete = true;
    l.prliWord3 = word3;
  }

  /** The process login of login ended (PRLI refused, PRLO): PLOGI alone remains. */
  prliEnded(login: Readonly<RemoteLogin>): void {
    const l = login as RemoteLogin;
    l.prliComplete = false;
    l.prliWord3 = 0;
  }

  /** Frees the handle; returns the login it held. */
  remove(handle: number): Readonly<RemoteLogin> | undefined {
    const l = this.byHandle.get(handle);
    this.byHandle.delete(handle);
    return l;
  }

  clear(): void {
    this.byHandle.clear();
  }

  /** The port database entry of a handle (qla_fw.h struct port_database_24xx), or null. */
  portDatabase(handle: number): Uint8Array | null {
    const l = this.byHandle.get(handle);
    if (!l) return null;
    const b = new Uint8Array(PDB_SIZE);
    const dv = view(b);
    const state = l.prliComplete ? PDS_PRLI_COMPLETE : PDS_PLOGI_COMPLETE;
    b[PDB_CURRENT_LOGIN_STATE] = state;
    b[PDB_LAST_LOGIN_STATE] = state;
    writeU24BE(b, PDB_PORT_ID, l.portId); // domain, area, al_pa
    dv.setUint16(PDB_NPORT_HANDLE, l.handle, true);
    dv.setUint16(PDB_RECEIVE_DATA_SIZE, l.receiveDataSize, true);
    b[PDB_PRLI_WORD_0] = 0x08; // FC-4 type FCP
    b[PDB_PRLI_WORD_0 + 1] = l.prliComplete ? 0x21 : 0; // image pair established
    dv.setUint16(PDB_PRLI_WORD_3, l.prliWord3, true);
    b.set(wwnToBytes(l.wwpn), PDB_PORT_NAME);
    b.set(wwnToBytes(l.wwnn), PDB_NODE_NAME);
    return b;
  }

  /**
   * The extended name list (struct get_name_list_extended) of the logins to remote ports — the
   * well-known handles above NPH_LAST_HANDLE are not listed — as many entries as fit in
   * bufferSize bytes.
   */
  nameList(bufferSize: number): Uint8Array {
    const entries = [...this.byHandle.values()].filter((l) => l.handle <= NPH.LAST_HANDLE);
    const fit = Math.min(entries.length, Math.floor(bufferSize / GNL_ENTRY_SIZE));
    const buf = new Uint8Array(fit * GNL_ENTRY_SIZE);
    for (let i = 0; i < fit; i++) {
      const pdb = this.portDatabase(entries[i]!.handle)!;
      const e = pdb.subarray(0, GNL_ENTRY_SIZE);
      // The driver's main GNL path reads port_id as al_pa, area, domain.
      writeU24LE(e, PDB_PORT_ID, entries[i]!.portId);
      buf.set(e, i * GNL_ENTRY_SIZE);
    }
    return buf;
  }
}
