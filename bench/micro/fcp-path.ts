/**
 * Micro-benchmark of the HBA's FCP initiator path without a guest or vfio-user: the production
 * InitiatorFabricPort (what the emulated firmware calls per Command Type 7) over an in-process
 * memory link to an in-process SAN (fabric + array, RAM volume). One process, so its CPU time
 * and instruction count (valgrind --tool=callgrind) are the HBA + SAN cost of the FCP exchanges
 * alone, free of guest and scheduler noise: the figure used for before/after comparisons of
 * hot-path changes (docs/benchmarks.md).
 *
 *   node bench/.out/bench/micro/fcp-path.js [ios=20000] [qd=32] [rw=read|write]
 * Prints one JSON line: { ios, qd, rw, seconds, cpuUsPerIo, iops, gcCount, gcMs }.
 */
import { PerformanceObserver } from 'node:perf_hooks';
import { linkPair } from '../../src/fc/link.js';
import { InitiatorFabricPort } from '../../src/isp/initiator-fabric.js';
import { lunField } from '../../src/fc/initiator.js';
import { San } from '../../src/san/san.js';
import { parseSanConfig } from '../../src/san/config.js';
import { sanConfig } from '../lib/procs.js';
import { setLogLevel } from '../../src/util/log.js';

const HBA_WWPN = 0xc050_76ff_e500_0001n;
const HBA_WWNN = 0xc050_76ff_e500_0000n;
const TARGET_WWPN = 0x500a_0981_0000_0001n;
const TARGET_WWNN = 0x500a_0980_0000_0001n;
const VOLUME_MIB = 64;
const BLOCK = 4096;

export interface MicroResult {
  ios: number;
  qd: number;
  rw: 'read' | 'write';
  seconds: number;
  cpuUsPerIo: number;
  iops: number;
  gcCount: number;
  gcMs: number;
}

export async function runFcpMicro(ios: number, qd: number, rw: 'read' | 'write'): Promise<MicroResult> {
  const san = await San.start(
    parseSanConfig(
      sanConfig({
        workDir: '',
        initiators: [HBA_WWPN],
        targetWwpn: TARGET_WWPN,
        targetWwnn: TARGET_WWNN,
        volumes: [{ name: 'micro', sizeMiB: VOLUME_MIB }],
      }),
    ),
  );
  const [sanEnd, hbaEnd] = linkPair('micro');
  san.fabric.attach(san.faults.wrap(sanEnd));
  const port = new InitiatorFabricPort({ connect: async () => hbaEnd });
  try {
    await port.login(HBA_WWPN, HBA_WWNN);
    const target = san.fabric.logins().find((l) => l.wwpn === TARGET_WWPN);
    if (!target) throw new Error('the target port is not logged in to the fabric');
    const pl = await port.plogi(target.nportId);
    const pr = await port.prli(target.nportId);
    if (!pl.ok || !pr.ok) throw new Error('PLOGI/PRLI to the target failed');
    const lun = lunField(0);
    const blocks = (VOLUME_MIB * 1024 * 1024) / BLOCK;
    const data = new Uint8Array(BLOCK).fill(0x5a);
    const readBuffer = new Uint8Array(BLOCK);
    // The views stay ours for the whole run: nothing releases them early.
    const released = new AbortController().signal;
    let tag = 1;
    let lba = 12345;
    const one = async (): Promise<void> => {
      const cdb = new Uint8Array(16);
      cdb[0] = rw === 'read' ? 0x28 : 0x2a;
      lba = (lba * 1103515245 + 12345) % blocks; // cheap deterministic "random"
      const dv = new DataView(cdb.buffer);
      dv.setUint32(2, lba * (BLOCK / 512), false);
      dv.setUint16(7, BLOCK / 512, false);
      const r = await port.fcp(target.nportId, {
        lun,
        cdb,
        direction: rw,
        expectedLength: BLOCK,
        data: [rw === 'write' ? data : readBuffer],
        released,
        taskTag: tag++ & 0xffff,
      });
      if (r.transportError || r.scsiStatus !== 0)
        throw new Error(`I/O failed: ${r.transportError ?? `status 0x${r.scsiStatus.toString(16)}`}`);
    };
    // A new I_T nexus starts with UNIT ATTENTION (power on / reset): consume it.
    for (let i = 0; i < 4; i++) {
      const tur = await port.fcp(target.nportId, {
        lun,
        cdb: new Uint8Array(16),
        direction: 'none',
        expectedLength: 0,
        data: [],
        released,
        taskTag: tag++,
      });
      if (tur.scsiStatus === 0 && !tur.transportError) break;
    }
    // Warm-up (JIT, first-touch of the volume's chunks), not measured.
    for (let i = 0; i < Math.min(2000, ios); i++) await one();
    let gcCount = 0;
    let gcMs = 0;
    const obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        gcCount++;
        gcMs += e.duration;
      }
    });
    obs.observe({ entryTypes: ['gc'] });
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let issued = 0;
    const worker = async (): Promise<void> => {
      while (issued < ios) {
        issued++;
        await one();
      }
    };
    await Promise.all(Array.from({ length: qd }, worker));
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    // gc entries are delivered asynchronously: let them arrive.
    await new Promise((r) => setTimeout(r, 50));
    obs.disconnect();
    return {
      ios,
      qd,
      rw,
      seconds,
      cpuUsPerIo: (cpu.user + cpu.system) / ios,
      iops: ios / seconds,
      gcCount,
      gcMs,
    };
  } finally {
    await port.logout().catch(() => {});
    await san.close();
  }
}

if (process.argv[1]?.endsWith('fcp-path.js')) {
  setLogLevel('warn');
  const ios = Number(process.argv[2] ?? 20000);
  const qd = Number(process.argv[3] ?? 32);
  const rw = process.argv[4] === 'write' ? 'write' : 'read';
  if (!(Number.isInteger(ios) && ios > 0 && Number.isInteger(qd) && qd > 0 && qd <= 256))
    throw new Error('usage: fcp-path.js [ios>0] [qd 1..256] [read|write]');
  console.log(JSON.stringify(await runFcpMicro(ios, qd, rw)));
  process.exit(0);
}
