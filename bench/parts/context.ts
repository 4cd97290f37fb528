/** What every benchmark part gets from the runner and gives back to it. */
export interface PartContext {
  /** shorter runs (smoke test of the tooling; figures not for publication) */
  quick: boolean;
  /** seconds per measured workload where a part runs timed workloads */
  seconds: number;
  /** scratch directory for sockets, configs, logs and backing files */
  workDir: string;
  log(message: string): void;
  /** e2e: run only these paths (the others are carried over from the previous e2e result) */
  e2ePaths?: ('npiv-hba' | 'megasas' | 'virtio-scsi' | 'host')[];
  /** e2e: repeats of the job sequence (default 3) */
  repeats?: number;
  /** e2e: the HBA in this process with counters (default) or as an `npiv-hba serve` process */
  e2eHba?: 'in-process' | 'process';
}

export interface PartOutput<T> {
  data: T;
  /** exact external commands this part ran (besides `npm run bench`) */
  commands: string[];
  bottleneck: string;
  notes: string[];
}
