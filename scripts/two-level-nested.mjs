#!/usr/bin/env node
// The two-level lab with a real level 2: QEMU + the stock qla2xxx as the VM, over the host NPIV
// backend (`serve --backend host:hostN`) inside a level-1 guest whose qla2xxx runs on the
// emulated ISP2532. Nested TCG, so minutes; not part of CI (docs/host-backend.md records a run).
// Usage: node scripts/two-level-nested.mjs   (after npm ci and scripts/guest/prepare.sh)
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawn } from 'node:child_process';
const ROOT = dirname(dirname(fileURLToPath(import.meta.url)));
const { runGuest, guestEnvironment } = await import(join(ROOT, 'dist/src/harness/guest.js'));
// The level-2 harness inside level 1 reads the same cache at the same path (shared over 9p).
const CACHE = process.env.NPIV_HBA_CACHE ?? '/var/cache/npiv-hba';
guestEnvironment(CACHE);
const dir = mkdtempSync(join(tmpdir(), 'npiv-nested-'));
const L1 = { wwpn: 'c0:50:76:ff:e5:00:30:01', wwnn: 'c0:50:76:ff:e5:01:30:01' };
const VM = { wwpn: 'c0:50:76:ff:e5:00:30:81', wwnn: 'c0:50:76:ff:e5:01:30:81' };
const T = { wwpn: '50:0a:09:81:00:00:30:02', wwnn: '50:0a:09:80:00:00:30:02' };
writeFileSync(
  join(dir, 'san.json'),
  JSON.stringify({
    fabric: {
      name: 'nested',
      domain: 4,
      zoning: { default: 'deny', zones: [{ name: 'vm', members: [VM.wwpn, T.wwpn] }] },
    },
    arrays: [
      {
        name: 'a',
        ports: [T],
        volumes: [{ name: 'v', size: '64MiB', file: 'v.img' }],
        hostGroups: [{ name: 'vm', initiators: [VM.wwpn], luns: { 0: 'v' } }],
      },
    ],
  }),
);
const cli = join(ROOT, 'bin/npiv-hba.js');
const start = (args) => {
  const p = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  p.stderr.resume();
  return p;
};
const san = start([
  'san',
  '--config',
  join(dir, 'san.json'),
  '--link',
  join(dir, 'link.sock'),
  '--control',
  join(dir, 'ctl.sock'),
]);
await new Promise((r) => setTimeout(r, 3000));
const serve = start([
  'serve',
  '--socket',
  join(dir, 'l1.sock'),
  '--san',
  join(dir, 'link.sock'),
  '--wwpn',
  L1.wwpn,
  '--wwnn',
  L1.wwnn,
  '--npiv-wwpn',
  `${VM.wwpn}:${VM.wwnn}`,
]);
await new Promise((r) => setTimeout(r, 3000));
const l2 = `
import { runGuest } from '/run/share/project/dist/src/harness/guest.js';
const t0 = Date.now();
const run = await runGuest({
  cacheDir: '${CACHE}', devices: ['/run/npiv-hba/vm.sock'], accel: 'tcg', timeoutMs: 3_000_000,
  script: 'wait_fc_online 0 600 || exit 3\\necho "GUEST:L2 $(cat $(fc_host 0)/port_name) $(cat $(fc_host 0)/port_state)"\\ni=0; while [ ! -e /sys/block/sda ] && [ $i -lt 1500 ]; do sleep 0.2; i=$((i+1)); done\\necho "GUEST:L2DISK $(cat /sys/block/sda/size)"\\ndd if=/dev/urandom of=/tmp/p bs=64k count=16 2>/dev/null; dd if=/tmp/p of=/dev/sda bs=64k oflag=direct 2>/dev/null; echo 3 > /proc/sys/vm/drop_caches; dd if=/dev/sda of=/tmp/q bs=64k count=16 iflag=direct 2>/dev/null; cmp /tmp/p /tmp/q && echo GUEST:L2VERIFY-OK || echo GUEST:L2VERIFY-BAD\\necho "GUEST:L2SUM $(sha256sum /tmp/p | cut -c1-64)"\\nexit 0\\n',
});
console.log('GUEST:L2RESULT ' + JSON.stringify({ exit: run.exitStatus, timedOut: run.timedOut, seconds: (Date.now() - t0) / 1000, lines: run.guestLines.filter((l) => l.startsWith('L2')), problems: run.kernelProblems }));
`;
const t0 = Date.now();
const run = await runGuest({
  cacheDir: CACHE,
  devices: [join(dir, 'l1.sock')],
  shareRootfs: true,
  shares: [
    { tag: 'project', path: ROOT },
    { tag: 'cache', path: CACHE },
  ],
  memMiB: 3072,
  loadQla: false,
  timeoutMs: 3_400_000,
  script: `printf manual > /sys/module/scsi_mod/parameters/scan
load_qla
wait_fc_online 0 120 || exit 3
H=$(basename "$(fc_host 0)")
enter_rootfs || exit 4
mount -t tmpfs tmpfs /rootfs/var/cache && mkdir -p /rootfs${CACHE} && mount --bind /rootfs/run/share/cache /rootfs${CACHE} || exit 8
chroot /rootfs sh -c "cd /run/share/project && exec node bin/npiv-hba.js serve --backend host:$H --wwpn ${VM.wwpn} --wwnn ${VM.wwnn} --socket /run/npiv-hba/vm.sock" >/tmp/serve.log 2>&1 &
wait_for /rootfs/run/npiv-hba/vm.sock 240 || { cat /tmp/serve.log; exit 5; }
cat > /rootfs/tmp/l2.mjs <<'EOF2'
${l2}
EOF2
in_rootfs node /tmp/l2.mjs
echo "GUEST:BLOCK1 $(ls /sys/block | tr '\\n' ' ')"
exit 0
`,
  onLine: (l) => {
    if (l.startsWith('GUEST:')) console.log(new Date().toISOString(), l.slice(0, 300));
  },
});
console.log('L1 exit', run.exitStatus, 'timedOut', run.timedOut, 'seconds', (Date.now() - t0) / 1000);
const line = run.guestLines.find((l) => l.startsWith('L2RESULT '));
const level2 = line ? JSON.parse(line.slice('L2RESULT '.length)) : null;
const written = level2?.lines.find((l) => l.startsWith('L2SUM '))?.slice(6);
const stored = createHash('sha256')
  .update(readFileSync(join(dir, 'v.img')).subarray(0, 1 << 20))
  .digest('hex');
console.log(`SAN volume holds what level 2 wrote: ${written === stored} (${stored})`);
serve.kill('SIGTERM');
san.kill('SIGTERM');
await new Promise((r) => setTimeout(r, 1000));
rmSync(dir, { recursive: true, force: true });
process.exitCode =
  run.exitStatus === 0 && level2?.exit === 0 && level2.lines.includes('L2VERIFY-OK') && written === stored ? 0 : 1;
