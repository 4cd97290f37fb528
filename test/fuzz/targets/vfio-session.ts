/**
 * Fuzz target "vfio-session": vfio-user message bytes from the fuzzer through the stream framer
 * into a VfioUserSession serving the real emulated HBA (src/hba.ts VportHba's ISP2532 PCI
 * function: config space, BAR1 registers, mailboxes, firmware, rings), with the fake native shim
 * of the vfio-user unit tests standing in for mmap/eventfd/close. A fresh session per input; the
 * HBA gets a function-level reset between inputs and is rebuilt every HBA_REUSE inputs (building
 * one costs milliseconds, mostly its flash image), so state left over by an earlier input can
 * matter: --replay runs a saved input on a fresh HBA.
 *
 * Input: the byte stream a client would send. The header's error field means nothing in a
 * command, so this harness reads it as a hint: bits 0-1 = how many fds to attach to the
 * message, bits 2-9 = their file size in pages (so DMA_MAP and SET_IRQS get real-looking fds).
 *
 * Oracles:
 *  - session.handle never throws, and logs nothing at error level (a handler that threw is
 *    logged as vfio_user_cmd_crashed);
 *  - every reply is well formed: size field = length, reply type, same id and command, no
 *    payload with the error flag; none for No_reply;
 *  - the framer gives the same messages and the same error whether the stream arrives whole or
 *    split in three;
 *  - after the session ends, every fd it was given is closed and every mapping unmapped.
 */
import { pino } from 'pino';
import { VportHba } from '../../../src/hba.js';
import { MessageFramer, type FramedMessage } from '../../../src/vfio-user/framer.js';
import { DEFAULT_LIMITS, VfioUserSession, maxIncomingMessageSize } from '../../../src/vfio-user/session.js';
import {
  COMMAND,
  HEADER,
  HEADER_FLAGS,
  decodeHeader,
  encodeDeviceInfo,
  encodeDmaMap,
  encodeDmaUnmap,
  encodeIrqInfo,
  encodeIrqSet,
  encodeMessage,
  encodeRegionAccess,
  encodeRegionInfo,
  encodeVersion,
} from '../../../src/vfio-user/protocol.js';
import { REG, HCCRX } from '../../../src/isp/registers.js';
import { FakeNative, FakeWatcher } from '../../unit/vfio-user/helpers.js';
import { LogCapture, VPORT } from '../../unit/hostile/support.js';
import { FuzzFinding, le16, le32, u8, type FuzzTarget } from '../engine/target.js';
import {
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_BAR0_REGION_INDEX,
  VFIO_PCI_BAR1_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
} from '../../../src/device/linux-vfio.js';

const PAGE = 4096;
const HBA_REUSE = 500;
const RAM_BASE = 0x10_0000n;

function framer(): MessageFramer {
  return new MessageFramer({
    maxMessageSize: maxIncomingMessageSize(DEFAULT_LIMITS),
    maxFdsPerMessage: DEFAULT_LIMITS.maxMsgFds,
    accept: 'command',
  });
}

/** The stream through a fresh framer in the given chunks: messages and the error, comparable. */
function frame(input: Uint8Array, cuts: number[]): { messages: FramedMessage[]; error: string | null } {
  const f = framer();
  const messages: FramedMessage[] = [];
  let error: string | null = null;
  let at = 0;
  for (const cut of [...cuts, input.length]) {
    const out = f.push(input.subarray(at, cut));
    messages.push(...out.messages);
    if (out.error && error === null) error = out.error.kind;
    at = cut;
  }
  return { messages, error };
}

function sameMessages(a: FramedMessage[], b: FramedMessage[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    const h = x.header;
    const k = y.header;
    if (h.id !== k.id || h.command !== k.command || h.size !== k.size || h.flags !== k.flags || h.error !== k.error)
      return false;
    if (Buffer.compare(x.payload, y.payload) !== 0) return false;
  }
  return true;
}

let nextId = 0;
function cmd(
  command: number,
  payload?: Uint8Array,
  opts: { fds?: number; pages?: number; noReply?: boolean } = {},
): Uint8Array {
  const error = (opts.fds ?? 0) | ((opts.pages ?? 0) << 2);
  const flags = HEADER_FLAGS.TYPE_COMMAND | (opts.noReply ? HEADER_FLAGS.NO_REPLY : 0);
  return encodeMessage({ id: nextId++ & 0xffff, command, flags, error }, payload);
}
const regionWrite = (region: number, offset: number, data: Uint8Array): Uint8Array =>
  cmd(COMMAND.REGION_WRITE, encodeRegionAccess({ offset: BigInt(offset), region, count: data.length, data }));
const regionRead = (region: number, offset: number, count: number): Uint8Array =>
  cmd(COMMAND.REGION_READ, encodeRegionAccess({ offset: BigInt(offset), region, count, data: new Uint8Array(0) }));

/** mb0..mbN then SET_HOST_INT, as qla2xxx starts a mailbox command. */
function mailbox(regs: number[]): Uint8Array[] {
  const out = regs.map((v, i) => regionWrite(VFIO_PCI_BAR1_REGION_INDEX, REG.MAILBOX0 + 2 * i, le16(v)));
  out.push(regionWrite(VFIO_PCI_BAR1_REGION_INDEX, REG.HCCR, le32(HCCRX.SET_HOST_INT << 28)));
  out.push(
    regionRead(VFIO_PCI_BAR1_REGION_INDEX, REG.HOST_STATUS, 4),
    regionRead(VFIO_PCI_BAR1_REGION_INDEX, REG.MAILBOX0, 2),
  );
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

/** What QEMU sends when it attaches, then the start of the qla2xxx probe. */
function attach(): Uint8Array[] {
  const msgs = [
    cmd(
      COMMAND.VERSION,
      encodeVersion({
        major: 0,
        minor: 0,
        json: '{"capabilities":{"max_msg_fds":16,"max_data_xfer_size":1048576,"migration":{"pgsize":4096}}}',
      }),
    ),
    cmd(COMMAND.DEVICE_GET_INFO, encodeDeviceInfo({ argsz: 16, flags: 0, numRegions: 0, numIrqs: 0 })),
  ];
  for (let i = 0; i < 9; i++)
    msgs.push(
      cmd(
        COMMAND.DEVICE_GET_REGION_INFO,
        encodeRegionInfo({ argsz: 32, flags: 0, index: i, capOffset: 0, size: 0n, offset: 0n }),
      ),
    );
  for (let i = 0; i < 5; i++)
    msgs.push(cmd(COMMAND.DEVICE_GET_IRQ_INFO, encodeIrqInfo({ argsz: 16, flags: 0, index: i, count: 0 })));
  msgs.push(
    cmd(
      COMMAND.DMA_MAP,
      encodeDmaMap({ argsz: 32, flags: 3, offset: 0n, address: RAM_BASE, size: BigInt(16 * PAGE) }),
      { fds: 1, pages: 16 },
    ),
    cmd(
      COMMAND.DMA_MAP,
      encodeDmaMap({ argsz: 32, flags: 1, offset: 0n, address: 0xfffc0000n, size: BigInt(4 * PAGE) }),
    ),
    regionRead(VFIO_PCI_CONFIG_REGION_INDEX, 0, 64),
    regionWrite(VFIO_PCI_CONFIG_REGION_INDEX, 0x04, le16(0x0006)), // memory space + bus master
    regionWrite(VFIO_PCI_CONFIG_REGION_INDEX, 0x14, le32(0xfebf0000)),
  );
  return msgs;
}

export function seeds(): Uint8Array[] {
  const base = attach();
  const irqs = [
    cmd(
      COMMAND.DEVICE_SET_IRQS,
      encodeIrqSet({
        argsz: 20,
        flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        index: 2,
        start: 0,
        count: 2,
        data: new Uint8Array(0),
      }),
      { fds: 2 },
    ),
    cmd(
      COMMAND.DEVICE_SET_IRQS,
      encodeIrqSet({
        argsz: 20,
        flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
        index: 0,
        start: 0,
        count: 1,
        data: new Uint8Array(0),
      }),
      { fds: 1 },
    ),
    cmd(
      COMMAND.DEVICE_SET_IRQS,
      encodeIrqSet({
        argsz: 21,
        flags: VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_ACTION_UNMASK,
        index: 0,
        start: 0,
        count: 1,
        data: u8(1),
      }),
    ),
  ];
  const ram = (offset: number): number[] => {
    const a = RAM_BASE + BigInt(offset);
    return [Number((a >> 16n) & 0xffffn), Number(a & 0xffffn), 0, 0, Number((a >> 48n) & 0xffffn)];
  };
  return [
    concat(base),
    concat([
      ...base,
      ...irqs,
      cmd(COMMAND.DMA_UNMAP, encodeDmaUnmap({ argsz: 24, flags: 0, address: RAM_BASE, size: BigInt(16 * PAGE) })),
      cmd(COMMAND.DEVICE_RESET),
    ]),
    concat([
      ...base,
      regionWrite(VFIO_PCI_BAR1_REGION_INDEX, REG.HCCR, le32(HCCRX.SET_RISC_RESET << 28)),
      regionWrite(VFIO_PCI_BAR1_REGION_INDEX, REG.HCCR, le32(HCCRX.REL_RISC_PAUSE << 28)),
      ...mailbox([0x0b, 0, ...ram(0x2000), 16, 0, 0x10]), // LOAD_RISC_RAM_EXTENDED
      ...mailbox([0x07, 0x10, 0]), // VERIFY_CHECKSUM
      ...mailbox([0x02, 0x10, 0]), // EXECUTE_FIRMWARE
      ...mailbox([0x69]), // GET_FIRMWARE_STATE
      ...mailbox([0x60, 0, ...ram(0x1000)]), // INITIALIZE_FIRMWARE with the ICB at RAM + 0x1000
      regionWrite(VFIO_PCI_BAR1_REGION_INDEX, REG.REQ_Q_IN, le32(1)),
      regionWrite(VFIO_PCI_BAR1_REGION_INDEX, REG.HCCR, le32(HCCRX.CLR_RISC_INT << 28)),
    ]),
    concat([
      ...base,
      ...irqs,
      regionRead(VFIO_PCI_BAR0_REGION_INDEX, 0, 4),
      regionRead(VFIO_PCI_BAR1_REGION_INDEX, REG.ISTATUS, 4),
      regionWrite(VFIO_PCI_BAR1_REGION_INDEX, REG.ICTRL, le32(8)),
      cmd(COMMAND.DEVICE_GET_INFO, new Uint8Array(16), { noReply: true }),
    ]),
  ];
}

export function createSessionTarget(): FuzzTarget {
  const silent = pino({ level: 'silent' });
  const newHba = (): VportHba =>
    new VportHba({
      socketPath: '/nonexistent/fuzz.sock',
      wwpn: VPORT.wwpn,
      wwnn: VPORT.wwnn,
      fabric: null,
      log: silent,
    });
  let hba = newHba();
  const logs = new LogCapture();
  let uses = 0;
  return {
    name: 'vfio-session',
    maxLen: 8192,
    dictionary: [
      ...Object.values(COMMAND).map((c) => le16(c)),
      le32(HEADER_FLAGS.TYPE_COMMAND),
      le32(HEADER_FLAGS.NO_REPLY),
      le32(HCCRX.SET_HOST_INT << 28),
      le32(0x20),
      le32(0x18),
      le32(0x10),
      u8(0x7b, 0x7d, 0x00),
    ],
    seeds,
    close() {
      hba.close();
    },
    async run(input) {
      const whole = frame(input, []);
      const cuts = [Math.floor(input.length / 3), Math.floor((2 * input.length) / 3) + ((input[0] ?? 0) % 7)]
        .map((c) => Math.min(c, input.length))
        .sort((a, b) => a - b);
      const split = frame(input, cuts);
      if (whole.error !== split.error || !sameMessages(whole.messages, split.messages)) {
        throw new FuzzFinding(
          'crash',
          `framer: whole stream gives ${whole.messages.length} messages (${whole.error}), split at ${cuts} gives ${split.messages.length} (${split.error})`,
        );
      }
      logs.records.length = 0;
      const native = new FakeNative();
      if (uses++ >= HBA_REUSE) {
        hba.close();
        hba = newHba();
        uses = 0;
      }
      const session = new VfioUserSession({
        device: hba.pci,
        native,
        watch: new FakeWatcher().watch,
        log: logs.logger,
      });
      try {
        for (const m of whole.messages) {
          const hint = m.header.error;
          const fds: number[] = [];
          for (let k = 0; k < (hint & 3); k++) fds.push(native.fd(((hint >>> 2) & 0xff) * PAGE));
          let result: ReturnType<typeof session.handle>;
          try {
            result = session.handle({ header: m.header, payload: m.payload, fds });
          } catch (err) {
            throw new FuzzFinding(
              'crash',
              `session.handle threw on ${m.header.command}: ${(err as Error).stack ?? String(err)}`,
            );
          }
          checkReply(m, result.reply);
          if (result.close) break;
          // Deferred device work (the ISP runs mailbox commands a turn later) belongs to this message.
          if (
            (m.header.command === COMMAND.REGION_WRITE || m.header.command === COMMAND.DEVICE_RESET) &&
            (hint & 0x400) === 0
          )
            await new Promise((r) => setImmediate(r));
        }
      } finally {
        session.end();
        hba.pci.reset();
      }
      if (native.open.size > 0)
        throw new FuzzFinding('crash', `fds leaked after the session ended: ${[...native.open].join(', ')}`);
      if (native.munmapped.length !== native.mmaps.length) {
        throw new FuzzFinding(
          'crash',
          `${native.mmaps.length - native.munmapped.length} DMA mappings still mapped after the session ended`,
        );
      }
      const failures = logs.failures();
      if (failures.length > 0) throw new FuzzFinding('crash', `error-level log: ${JSON.stringify(failures[0])}`);
    },
  };
}

function checkReply(m: FramedMessage, reply: Uint8Array | null): void {
  const noReply = (m.header.flags & HEADER_FLAGS.NO_REPLY) !== 0;
  if (reply === null) {
    if (!noReply) throw new FuzzFinding('crash', `no reply to command ${m.header.command} id ${m.header.id}`);
    return;
  }
  if (noReply) throw new FuzzFinding('crash', `a reply to No_reply command ${m.header.command}`);
  const h = decodeHeader(reply);
  const bad =
    h.size !== reply.length
      ? `size field ${h.size} for ${reply.length} bytes`
      : (h.flags & HEADER_FLAGS.TYPE_MASK) !== HEADER_FLAGS.TYPE_REPLY
        ? `flags 0x${h.flags.toString(16)} are not a reply`
        : h.id !== m.header.id || h.command !== m.header.command
          ? `id/command ${h.id}/${h.command} answer ${m.header.id}/${m.header.command}`
          : h.flags & HEADER_FLAGS.ERROR && reply.length !== HEADER.SIZEOF
            ? 'an error reply with a payload'
            : null;
  if (bad) throw new FuzzFinding('crash', `malformed reply: ${bad}`);
}
