/**
 * The "no import cycles" rule for src/ (issue 12): every module of src/ can be read and tested
 * without the ones that import it. The graph is built with the TypeScript parser from every
 * import/export declaration, dynamic import() and import('…') type of every src/**\/*.ts file.
 * Type-only imports count too: a type cycle still ties two modules together, and one edit that
 * turns `import type` into a value import makes it a runtime cycle.
 *
 * A cycle is reported as its edges: an import a → b is cyclic when b also reaches a (both are in
 * one strongly connected component). ALLOWED_CYCLES lists the cyclic edges that exist today
 * outside src/isp; the test fails on any cyclic edge not listed (a new cycle) and on any listed
 * edge that is no longer cyclic (delete it: the list only shrinks). src/isp may have none.

 *
 * The same graph checks the layering of the FC stack (issue 12): src/fc is the N_Port side both the
 * HBA (src/isp) and the simulated SAN (src/san) build on, so it imports neither of them, and the
 * HBA does not import the simulator. Likewise the device contract (src/device: guest memory, DMA
 * errors, interrupt signalling) keeps the device models (src/pci, src/isp) free of the transport.
 */
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { packageRoot } from '../../../src/util/package-root.js';

const ROOT = packageRoot();
const SRC = path.join(ROOT, 'src');

/**
 * Cyclic imports that may remain for now, as [importer, imported] relative to the repository root.
 * None today: when src/ was mapped for issue 12 the only cycle was firmware.ts ↔ iocb/* ↔
 * mailbox.ts in src/isp, which is gone. Outside src/isp an entry may be added only with the cycle
 * it belongs to and the issue that will remove it; inside src/isp never.
 */
const ALLOWED_CYCLES: readonly (readonly [string, string])[] = [];

type Graph = Map<string, Set<string>>;

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Every module specifier a file names, statically or dynamically. */
function specifiers(file: string): string[] {
  const sf = ts.createSourceFile(file, fs.readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out: string[] = [];
  const visit = (n: ts.Node): void => {
    if (
      (ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) &&
      n.moduleSpecifier &&
      ts.isStringLiteral(n.moduleSpecifier)
    ) {
      out.push(n.moduleSpecifier.text);
    } else if (
      ts.isImportEqualsDeclaration(n) &&
      ts.isExternalModuleReference(n.moduleReference) &&
      ts.isStringLiteral(n.moduleReference.expression)
    ) {
      out.push(n.moduleReference.expression.text);
    } else if (ts.isCallExpression(n) && n.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const a = n.arguments[0];
      if (a && ts.isStringLiteralLike(a)) out.push(a.text);
    } else if (ts.isImportTypeNode(n) && ts.isLiteralTypeNode(n.argument) && ts.isStringLiteral(n.argument.literal)) {
      out.push(n.argument.literal.text);
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return out;
}

/** A relative specifier as the compiler resolves it (NodeNext: './x.js' names ./x.ts). */
function resolve(from: string, spec: string): string | null {
  const base = path.resolve(path.dirname(from), spec);
  const candidates = [base.replace(/\.js$/, '.ts'), base, `${base}.ts`, path.join(base, 'index.ts')];
  return candidates.find((c) => c.endsWith('.ts') && fs.existsSync(c)) ?? null;
}

let built: { graph: Graph; unresolved: string[] } | null = null;

function importGraph(): { graph: Graph; unresolved: string[] } {
  built ??= buildImportGraph();
  return built;
}

function buildImportGraph(): { graph: Graph; unresolved: string[] } {
  const graph: Graph = new Map();
  const unresolved: string[] = [];
  for (const file of sourceFiles(SRC)) {
    const from = path.relative(ROOT, file);
    const to = new Set<string>();
    for (const spec of specifiers(file)) {
      if (!spec.startsWith('.')) continue; // packages and node: builtins cannot import src/
      const target = resolve(file, spec);
      if (!target) unresolved.push(`${from}: ${spec}`);
      else if (target.startsWith(SRC + path.sep)) to.add(path.relative(ROOT, target));
    }
    graph.set(from, to);
  }
  return { graph, unresolved };
}

/** Strongly connected components (Tarjan), as a component number per node. */
function components(graph: Graph): Map<string, number> {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const comp = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  let next = 0;
  let count = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.set(w, count);
      } while (w !== v);
      count++;
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return comp;
}

/** The imports that lie on a cycle, as "importer -> imported". */
function cyclicEdges(graph: Graph): string[] {
  const comp = components(graph);
  const out: string[] = [];
  for (const [a, targets] of graph) {
    for (const b of targets) if (a === b || comp.get(a) === comp.get(b)) out.push(`${a} -> ${b}`);
  }
  return out.sort();
}

/** One cycle through the edge a -> b (shortest path back from b to a), for the failure message. */
function cycleThrough(graph: Graph, a: string, b: string): string {
  const prev = new Map<string, string>([[b, b]]);
  const queue = [b];
  while (queue.length) {
    const v = queue.shift()!;
    if (v === a) break;
    for (const w of graph.get(v) ?? []) {
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  const pathBack: string[] = [a];
  for (let v = a; v !== b; ) {
    v = prev.get(v)!;
    pathBack.push(v);
  }
  return [a, ...pathBack.reverse()].join(' -> ');
}

const edgeName = ([a, b]: readonly [string, string]) => `${a} -> ${b}`;

/**
 * A layering rule: no module under `from` imports a module under any of `forbidden`; with
 * `onlyFrom`, every import of a module under `from` lands under one of those paths.
 */
interface LayerRule {
  from: string;
  forbidden?: readonly string[];
  onlyFrom?: readonly string[];
}

const LAYER_RULES: readonly LayerRule[] = [
  // The HBA runs the FC stack, not the simulator.
  { from: 'src/isp/', forbidden: ['src/san/'] },
  // The FC stack (wire formats, links, the N_Port engine) sits below both of its users, and needs
  // nothing but itself, the utilities, the native shim (peer credentials of a link socket) and
  // the SAM vocabulary it shares with SCSI targets.
  {
    from: 'src/fc/',
    forbidden: ['src/san/', 'src/isp/'],
    onlyFrom: ['src/fc/', 'src/util/', 'src/native/', 'src/scsi/sam.ts'],
  },
  // The device models reach guest memory and interrupts through src/device, never through the
  // transport that happens to host them (vfio-user today; a test rig or another transport tomorrow).
  { from: 'src/pci/', forbidden: ['src/vfio-user/', 'src/isp/'] },
  { from: 'src/isp/', forbidden: ['src/vfio-user/'] },
  // The contract itself depends on nothing.
  { from: 'src/device/', onlyFrom: ['src/device/'] },
];

/** The imports that break a rule, as "importer -> imported". */
function layerViolations(graph: Graph, rules: readonly LayerRule[]): string[] {
  const under = (file: string, prefixes: readonly string[]) =>
    prefixes.some((p) => (p.endsWith('/') ? file.startsWith(p) : file === p));
  const out: string[] = [];
  for (const [a, targets] of graph) {
    for (const rule of rules) {
      if (!a.startsWith(rule.from)) continue;
      for (const b of targets) {
        if ((rule.forbidden && under(b, rule.forbidden)) || (rule.onlyFrom && !under(b, rule.onlyFrom)))
          out.push(`${a} -> ${b}`);
      }
    }
  }
  return [...new Set(out)].sort();
}

describe('import graph of src/', () => {
  it('finds the cyclic edges of a graph, self-imports included', () => {
    const g: Graph = new Map([
      ['a', new Set(['b'])],
      ['b', new Set(['c'])],
      ['c', new Set(['a', 'd'])],
      ['d', new Set(['e'])],
      ['e', new Set(['e'])],
      ['f', new Set(['a'])],
    ]);
    expect(cyclicEdges(g)).toEqual(['a -> b', 'b -> c', 'c -> a', 'e -> e']);
    expect(cycleThrough(g, 'c', 'a')).toBe('c -> a -> b -> c');
  });

  it('sees every relative import (each one resolves; type-only and re-exports count)', () => {
    const { graph, unresolved } = importGraph();
    expect(unresolved).toEqual([]);
    expect(graph.size).toBeGreaterThan(100);
    // Edges the walk must find: a value import, a type-only import, a re-export.
    expect(graph.get('src/hba.ts')).toContain('src/isp/isp2532.ts');
    expect(graph.get('src/isp/iocb/ct.ts')).toContain('src/isp/iocb/context.ts');
    expect(graph.get('src/isp/mailbox.ts')).toContain('src/isp/fw-constants.ts');
  });

  it('has no import cycle but the allow-listed ones, and every allow-listed one still exists', () => {
    const { graph } = importGraph();
    const cyclic = cyclicEdges(graph);
    const allowed = new Set(ALLOWED_CYCLES.map(edgeName));
    const fresh = cyclic
      .filter((e) => !allowed.has(e))
      .map((e) => {
        const [a, b] = e.split(' -> ') as [string, string];
        return cycleThrough(graph, a, b);
      });
    expect(fresh, 'new import cycles (break them; do not allow-list them)').toEqual([]);
    const gone = [...allowed].filter((e) => !cyclic.includes(e));
    expect(gone, 'allow-listed imports that are no longer cyclic: delete them from ALLOWED_CYCLES').toEqual([]);
  });

  it('allows no cycle in src/isp', () => {
    expect(ALLOWED_CYCLES.filter(([a, b]) => a.startsWith('src/isp/') || b.startsWith('src/isp/'))).toEqual([]);
  });
});

describe('layering of src/', () => {
  it('finds the imports that break a rule', () => {
    const g: Graph = new Map([
      [
        'src/fc/a.ts',
        new Set(['src/fc/b.ts', 'src/util/log.ts', 'src/san/x.ts', 'src/scsi/sam.ts', 'src/scsi/api.ts']),
      ],
      ['src/isp/c.ts', new Set(['src/fc/a.ts', 'src/san/x.ts', 'src/device/g.ts', 'src/vfio-user/v.ts'])],
      ['src/san/x.ts', new Set(['src/fc/a.ts', 'src/isp/c.ts'])],
      ['src/pci/p.ts', new Set(['src/device/g.ts', 'src/vfio-user/v.ts'])],
      ['src/device/g.ts', new Set(['src/device/h.ts', 'src/util/log.ts'])],
    ]);
    expect(layerViolations(g, LAYER_RULES)).toEqual([
      'src/device/g.ts -> src/util/log.ts',
      'src/fc/a.ts -> src/san/x.ts',
      'src/fc/a.ts -> src/scsi/api.ts',
      'src/isp/c.ts -> src/san/x.ts',
      'src/isp/c.ts -> src/vfio-user/v.ts',
      'src/pci/p.ts -> src/vfio-user/v.ts',
    ]);
  });

  it('src/isp does not import src/san; src/fc imports neither src/san nor src/isp; src/pci and src/isp do not import src/vfio-user', () => {
    const { graph } = importGraph();
    expect([...graph.keys()].filter((f) => f.startsWith('src/fc/')).length).toBeGreaterThan(10);
    expect([...graph.keys()].filter((f) => f.startsWith('src/device/')).length).toBeGreaterThan(0);
    expect(layerViolations(graph, LAYER_RULES), "imports across the FC stack's layering").toEqual([]);
  });
});
