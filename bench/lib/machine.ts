/**
 * The machine a benchmark ran on, saved with every result file: CPU model, cores, memory,
 * kernel, Node.js version, QEMU accelerator, date and load at start (the dev machine is shared).
 */
import { cpus, freemem, loadavg, release, totalmem } from 'node:os';
import { readFileSync } from 'node:fs';
import { chooseAccelerator } from '../../src/harness/guest.js';

export interface MachineInfo {
  date: string;
  cpuModel: string;
  cores: number;
  memoryMiB: number;
  freeMemoryMiB: number;
  kernel: string;
  os: string;
  node: string;
  accelerator: 'kvm' | 'tcg';
  loadAverage: number[];
}

function osName(): string {
  try {
    const text = readFileSync('/etc/os-release', 'utf8');
    const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(text);
    return m?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function machineInfo(): MachineInfo {
  const cpu = cpus();
  return {
    date: new Date().toISOString(),
    cpuModel: cpu[0]?.model.trim() ?? 'unknown',
    cores: cpu.length,
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    freeMemoryMiB: Math.round(freemem() / 2 ** 20),
    kernel: release(),
    os: osName(),
    node: process.version,
    accelerator: chooseAccelerator(),
    loadAverage: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
