/**
 * The definition store: one `<uuid>.json` file per vport in the config directory (mdevctl keeps
 * `/etc/mdevctl.d/<parent>/<uuid>`; vports have no parent device, so the directory is flat).
 *
 * Writes are atomic and exclusive (temporary file, then link(2) onto the final name: a second
 * writer of the same UUID fails with EEXIST, and a reader never sees half a file). Checks that
 * span definitions (duplicate WWPN, socket path) run under a lock file so two concurrent
 * `define` commands cannot both take the same name.
 */
import {
  closeSync,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { definitionFromJson, definitionToJson, isUuid, type VportDefinition } from './definition.js';
import { VportError } from './errors.js';
import { withLockFile } from './lock.js';

export const DEFAULT_CONFIG_DIR = '/etc/npiv-hba/vports';
export const DEFAULT_RUN_DIR = '/run/npiv-hba';
export const CONFIG_DIR_ENV = 'NPIV_HBA_CONFIG_DIR';
export const RUN_DIR_ENV = 'NPIV_HBA_RUN_DIR';

const DEFINITION_SUFFIX = '.json';
const LOCK_FILE = '.lock';

export interface DefinitionProblem {
  file: string;
  message: string;
}

export interface DefinitionListing {
  definitions: VportDefinition[];
  /** files in the directory that are not valid definitions */
  problems: DefinitionProblem[];
}

export function resolveConfigDir(option: string | undefined, env: NodeJS.ProcessEnv): string {
  return option ?? env[CONFIG_DIR_ENV] ?? DEFAULT_CONFIG_DIR;
}

export function resolveRunDir(option: string | undefined, env: NodeJS.ProcessEnv): string {
  return option ?? env[RUN_DIR_ENV] ?? DEFAULT_RUN_DIR;
}

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | null)?.code;
}

export class VportStore {
  constructor(readonly configDir: string) {}

  definitionPath(uuid: string): string {
    return join(this.configDir, uuid + DEFINITION_SUFFIX);
  }

  /** Every definition, sorted by UUID; a missing directory is an empty store. */
  list(): DefinitionListing {
    let names: string[];
    try {
      names = readdirSync(this.configDir);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return { definitions: [], problems: [] };
      throw new VportError(`cannot read the config directory ${this.configDir}: ${(err as Error).message}`);
    }
    const definitions: VportDefinition[] = [];
    const problems: DefinitionProblem[] = [];
    for (const name of names.sort()) {
      if (!name.endsWith(DEFINITION_SUFFIX)) continue;
      const file = join(this.configDir, name);
      try {
        definitions.push(this.readFile(file, name.slice(0, -DEFINITION_SUFFIX.length)));
      } catch (err) {
        problems.push({ file, message: (err as Error).message });
      }
    }
    return { definitions, problems };
  }

  /** The definition of `uuid`, or null when there is none; a bad file throws. */
  find(uuid: string): VportDefinition | null {
    const file = this.definitionPath(uuid);
    if (!existsSync(file)) return null;
    try {
      return this.readFile(file, uuid);
    } catch (err) {
      throw new VportError(`invalid vport definition ${file}: ${(err as Error).message}`);
    }
  }

  get(uuid: string): VportDefinition {
    const def = this.find(uuid);
    if (!def) throw new VportError(`no vport ${uuid} is defined (no ${this.definitionPath(uuid)})`);
    return def;
  }

  /** Writes a new definition; refuses (EEXIST) if the UUID is already defined. */
  create(def: VportDefinition): void {
    mkdirSync(this.configDir, { recursive: true, mode: 0o755 });
    const file = this.definitionPath(def.uuid);
    const tmp = this.writeTemporary(def, file);
    try {
      linkSync(tmp, file);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') throw new VportError(`vport ${def.uuid} is already defined (${file})`);
      throw err;
    } finally {
      unlinkSync(tmp);
    }
  }

  /** Overwrites the definition of an existing UUID atomically (temporary file, then rename(2)). */
  replace(def: VportDefinition): void {
    const file = this.definitionPath(def.uuid);
    if (!existsSync(file)) throw new VportError(`no vport ${def.uuid} is defined (no ${file})`);
    const tmp = this.writeTemporary(def, file);
    try {
      renameSync(tmp, file);
    } catch (err) {
      unlinkSync(tmp);
      throw err;
    }
  }

  /** The definition written to a temporary file beside `file` (create links it, replace renames it). */
  private writeTemporary(def: VportDefinition, file: string): string {
    const tmp = `${file}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o644);
    try {
      writeSync(fd, JSON.stringify(definitionToJson(def), null, 2) + '\n');
    } finally {
      closeSync(fd);
    }
    return tmp;
  }

  remove(uuid: string): void {
    try {
      unlinkSync(this.definitionPath(uuid));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT')
        throw new VportError(`no vport ${uuid} is defined (no ${this.definitionPath(uuid)})`);
      throw err;
    }
  }

  /** Runs `fn` holding the store's lock file, so that cross-definition checks and the write are one step. */
  withLock<T>(fn: () => Promise<T> | T): Promise<T> {
    return withLockFile(join(this.configDir, LOCK_FILE), `the config directory ${this.configDir}`, fn);
  }

  private readFile(file: string, expectedUuid: string): VportDefinition {
    let json: unknown;
    try {
      json = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw new Error(`not valid JSON: ${(err as Error).message}`);
    }
    const def = definitionFromJson(json);
    if (!isUuid(expectedUuid) || def.uuid !== expectedUuid) {
      throw new Error(`file name does not match its uuid ${def.uuid} (expected ${def.uuid}${DEFINITION_SUFFIX})`);
    }
    return def;
  }
}
