/**
 * Part 4 — scale, against the SAN as its own process (`npiv-hba san`, RAM volume, open zoning):
 *   - 255 NPIV vports FDISC'd through one physical N_Port (the usual per-port limit): time until
 *     all are logged in, and until every one has registered with the name server, found the
 *     target with GPN_FT/GNN_FT/GFF_ID and logged in to it (PLOGI+PRLI) — what qla2xxx does
 *     per vport after link-up;
 *   - memory of idle `npiv-hba serve` processes (RSS and PSS, cabled to the SAN, no guest);
 *   - name-server query time (GPN_FT for FCP) with 2,048 registered ports (8 links × 256).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Initiator } from '../../src/fc/initiator.js';
import {
  CT_MAX_IU,
  FC4_FEATURE,
  FC4_TYPE_FCP,
  NS,
  decodeNameList,
  encodeFtRequest,
  nameServerRequest,
} from '../../src/fc/ct.js';
import { WELL_KNOWN } from '../../src/fc/frame.js';
import { pssKiB, rssKiB } from '../../src/util/proc.js';
import { startSan, startServe } from '../lib/procs.js';
import { summarizeLatency, type LatencySummary } from '../lib/stats.js';
import { renderBarChart } from '../lib/svg.js';
import { saveChart } from '../lib/results.js';
import { TARGET_WWNN, TARGET_WWPN } from './emulator.js';
import type { PartContext, PartOutput } from './context.js';

export const VPORTS_PER_PORT = 255;
export const NAME_SERVER_LINKS = 8;
export const NAME_SERVER_PORTS = NAME_SERVER_LINKS * (VPORTS_PER_PORT + 1); // 2,048
const IDLE_HBAS = 4;
const IDLE_SETTLE_MS = 3000;
const EXCHANGE_TIMEOUT_MS = 30_000;

/** WWPN of port `index` on physical link `link` (c0:50:76:ff:LL:00:II:II style, NAA 0xc = locally assigned). */
export function scaleWwpn(link: number, index: number): bigint {
  return 0xc050_76ff_0000_0000n | (BigInt(link & 0xff) << 24n) | BigInt(index & 0xffff);
}
function scaleWwnn(link: number): bigint {
  return 0xc050_76fe_0000_0000n | (BigInt(link & 0xff) << 24n);
}

export interface ScaleData {
  vports: number;
  /** all FDISCs accepted (concurrently issued after the physical FLOGI), ms */
  allLoggedInMs: number;
  /** all vports registered, discovered the target and logged in to it, ms (from the first FDISC) */
  allDiscoveredMs: number;
  vportsThatFoundTheTarget: number;
  idleHba: { processes: number; rssMiB: number[]; pssMiB: number[]; meanRssMiB: number; meanPssMiB: number };
  nameServer: { registeredPorts: number; entriesReturned: number; queries: number; gpnFt: LatencySummary };
}

export async function runScalePart(ctx: PartContext): Promise<PartOutput<ScaleData>> {
  const initiators: bigint[] = [];
  for (let l = 0; l < NAME_SERVER_LINKS; l++)
    for (let i = 0; i <= VPORTS_PER_PORT; i++) initiators.push(scaleWwpn(l, i));
  const san = await startSan({
    workDir: ctx.workDir,
    initiators,
    targetWwpn: TARGET_WWPN,
    targetWwnn: TARGET_WWNN,
    volumes: [{ name: 'scale', sizeMiB: 16 }],
  });
  const physicals: Initiator[] = [];
  const nsDir = join(ctx.workDir, 'name-server');
  mkdirSync(nsDir);
  let nsSan: Awaited<ReturnType<typeof startSan>> | null = null;
  try {
    // 255 vports through one physical port, each subscribed to RSCNs (SCR) as qla2xxx does.
    const phys = await Initiator.connect(san.link, {
      wwpn: scaleWwpn(0, 0),
      wwnn: scaleWwnn(0),
      exchangeTimeoutMs: EXCHANGE_TIMEOUT_MS,
    });
    physicals.push(phys);
    const t0 = performance.now();
    const vports = await Promise.all(
      Array.from({ length: VPORTS_PER_PORT }, (_, i) =>
        phys.createVport({ wwpn: scaleWwpn(0, i + 1), wwnn: scaleWwnn(0), exchangeTimeoutMs: EXCHANGE_TIMEOUT_MS }),
      ),
    );
    const allLoggedInMs = performance.now() - t0;
    ctx.log(`scale: ${vports.length} vports logged in after ${allLoggedInMs.toFixed(0)} ms`);
    const found = await Promise.all(
      vports.map(async (v) => {
        await v.scr();
        await v.nameServer.register({ fcpFeatures: FC4_FEATURE.INITIATOR });
        const targets = await v.discoverTargets();
        const t = targets.find((x) => x.wwpn === TARGET_WWPN);
        if (!t) return false;
        await v.plogi(t.nportId);
        await v.prli(t.nportId);
        return true;
      }),
    );
    const allDiscoveredMs = performance.now() - t0;
    ctx.log(`scale: all discovered after ${allDiscoveredMs.toFixed(0)} ms`);

    for (const p of physicals) p.closeLink('discovery measured');
    physicals.length = 0;

    // 2,048 registered ports, on a fresh SAN: 8 links with a physical port and 255 vports each,
    // registered without SCR (with SCR, each login would RSCN every subscribed port: the
    // measure would be the RSCN storm, not the name server).
    nsSan = await startSan({
      workDir: nsDir,
      initiators,
      targetWwpn: TARGET_WWPN,
      targetWwnn: TARGET_WWNN,
      volumes: [{ name: 'scale', sizeMiB: 16 }],
    });
    for (let l = 0; l < NAME_SERVER_LINKS; l++) {
      const p = await Initiator.connect(nsSan.link, {
        wwpn: scaleWwpn(l, 0),
        wwnn: scaleWwnn(l),
        exchangeTimeoutMs: EXCHANGE_TIMEOUT_MS,
      });
      physicals.push(p);
      await p.nameServer.register({ fcpFeatures: FC4_FEATURE.INITIATOR });
      await Promise.all(
        Array.from({ length: VPORTS_PER_PORT }, async (_, i) => {
          const v = await p.createVport({
            wwpn: scaleWwpn(l, i + 1),
            wwnn: scaleWwnn(l),
            exchangeTimeoutMs: EXCHANGE_TIMEOUT_MS,
          });
          await v.nameServer.register({ fcpFeatures: FC4_FEATURE.INITIATOR });
        }),
      );
    }
    const querier = physicals[0]!;
    const ftRequest = encodeFtRequest({ domainScope: 0, areaScope: 0, fc4Type: FC4_TYPE_FCP });
    const queries = ctx.quick ? 10 : 100;
    const times: number[] = [];
    let entriesReturned = 0;
    for (let q = 0; q < queries; q++) {
      const s = performance.now();
      // NameServerClient.gpnFt() asks for at most 8 KiB (511 entries); ask for the whole list, as a large fabric needs.
      const list = decodeNameList(
        (await querier.ct(WELL_KNOWN.DIRECTORY_SERVER, nameServerRequest(NS.GPN_FT, ftRequest, CT_MAX_IU))).payload,
      );
      times.push((performance.now() - s) * 1000);
      entriesReturned = list.length;
    }
    ctx.log(`scale: GPN_FT over ${entriesReturned} entries, p50 ${summarizeLatency(times).p50Us.toFixed(0)} µs`);
    for (const p of physicals) p.closeLink('benchmark done');
    physicals.length = 0;
    await nsSan.proc.stop();
    nsSan = null;

    // Idle HBA processes.
    const serves = [];
    try {
      for (let i = 0; i < IDLE_HBAS; i++)
        serves.push(await startServe(ctx.workDir, `idle${i}`, san.link, scaleWwpn(9, i), scaleWwnn(9)));
      await new Promise((r) => setTimeout(r, IDLE_SETTLE_MS));
      const rss = await Promise.all(serves.map((s) => rssKiB(s.proc.child.pid!)));
      const pss = await Promise.all(serves.map((s) => pssKiB(s.proc.child.pid!)));
      const mib = (k: number) => Math.round((k / 1024) * 10) / 10;
      const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
      const data: ScaleData = {
        vports: VPORTS_PER_PORT,
        allLoggedInMs,
        allDiscoveredMs,
        vportsThatFoundTheTarget: found.filter(Boolean).length,
        idleHba: {
          processes: IDLE_HBAS,
          rssMiB: rss.map(mib),
          pssMiB: pss.map(mib),
          meanRssMiB: mib(mean(rss)),
          meanPssMiB: mib(mean(pss)),
        },
        nameServer: { registeredPorts: NAME_SERVER_PORTS, entriesReturned, queries, gpnFt: summarizeLatency(times) },
      };
      saveChart(
        'scale',
        renderBarChart({
          title: `Scale: ${VPORTS_PER_PORT} vports on one physical port`,
          unit: 'milliseconds (shorter is better)',
          series: ['all logged in (FDISC)', 'all discovered + logged in to the target'],
          groups: [{ label: `${VPORTS_PER_PORT} vports`, values: [allLoggedInMs, allDiscoveredMs] }],
        }),
      );
      return {
        data,
        commands: [
          'node bench/run.js --only scale',
          'node bench/.out/bench/lib/cli-launcher.js san --config <work>/san.json --link <work>/san.sock',
          'node bench/.out/bench/lib/cli-launcher.js serve --socket <work>/idleN.sock --wwpn … --wwnn … --san <work>/san.sock (×4)',
        ],
        bottleneck: scaleBottleneck(data),
        notes: [
          'The vports are the N_Port initiator engine (src/fc/initiator.ts) in the benchmark process, i.e. what each HBA process runs for its fabric side; the 255 HBA processes themselves are not started (see idle memory for their cost).',
          'Zoning is open (default allow), so every GPN_FT lists every registered FCP port.',
        ],
      };
    } finally {
      for (const s of serves) await s.proc.stop();
    }
  } finally {
    for (const p of physicals) p.closeLink('benchmark done');
    await nsSan?.proc.stop();
    await san.proc.stop();
  }
}

export function scaleBottleneck(d: ScaleData): string {
  const perVportMs = d.allDiscoveredMs / Math.max(1, d.vports);
  const perEntryUs = d.nameServer.gpnFt.p50Us / Math.max(1, d.nameServer.entriesReturned);
  return (
    `The single-threaded SAN process serialises every fabric exchange: discovery of ${d.vports} vports costs ${perVportMs.toFixed(1)} ms per vport ` +
    `(≈ 10 name-server/ELS exchanges each), and GPN_FT costs ≈ ${perEntryUs.toFixed(2)} µs per listed port (${d.nameServer.gpnFt.p50Us.toFixed(0)} µs p50 for ${d.nameServer.entriesReturned}). ` +
    `Memory: ${d.idleHba.meanPssMiB} MiB PSS per idle HBA process (one Node.js runtime each) is what limits how many vports one host serves.`
  );
}
