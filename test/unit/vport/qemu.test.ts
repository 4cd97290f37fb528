import { describe, expect, it } from 'vitest';
import type { VportDefinition } from '../../../src/vport/definition.js';
import { VportUsageError } from '../../../src/vport/errors.js';
import {
  formatShell,
  libvirtXml,
  parseChassis,
  parseMemorySize,
  qemuArguments,
  shellQuote,
} from '../../../src/vport/qemu.js';

const A: VportDefinition = {
  uuid: '7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50',
  wwpn: 0x5001438001234567n,
  wwnn: 0x5001438001234566n,
  backend: { type: 'none' },
  socket: '/run/npiv-hba/7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50.sock',
  autostart: false,
};
const B: VportDefinition = {
  ...A,
  uuid: '0badc0de-0000-4000-8000-000000000001',
  wwpn: 0x5001438001234569n,
  wwnn: 0x5001438001234568n,
  socket: "/srv/it's <&>.sock",
};

/**
 * Minimal XML well-formedness check: one root element, properly nested tags, quoted attributes
 * without raw '<' or '&' (other than entities), comments closed. Returns the element names in order.
 */
function checkXml(text: string): { root: string; elements: { name: string; attrs: Record<string, string> }[] } {
  const elements: { name: string; attrs: Record<string, string> }[] = [];
  const stack: string[] = [];
  let roots = 0;
  let i = 0;
  const entity = /&(amp|lt|gt|apos|quot);/g;
  while (i < text.length) {
    const lt = text.indexOf('<', i);
    const chunk = lt < 0 ? text.slice(i) : text.slice(i, lt);
    if (chunk.replace(entity, '').includes('&')) throw new Error(`bare & in text near ${i}`);
    if (stack.length === 0 && chunk.trim() !== '') throw new Error(`text outside the root: ${chunk.trim()}`);
    if (lt < 0) break;
    if (text.startsWith('<!--', lt)) {
      const end = text.indexOf('-->', lt + 4);
      if (end < 0) throw new Error('unterminated comment');
      if (text.slice(lt + 4, end).includes('--')) throw new Error('-- inside a comment');
      i = end + 3;
      continue;
    }
    const gt = text.indexOf('>', lt);
    if (gt < 0) throw new Error('unterminated tag');
    const tag = text.slice(lt + 1, gt);
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) throw new Error(`mismatched </${name}>`);
    } else {
      const selfClosing = tag.endsWith('/');
      const body = selfClosing ? tag.slice(0, -1) : tag;
      const m = /^([A-Za-z_][\w:.-]*)((?:\s+[A-Za-z_][\w:.-]*=(?:'[^'<]*'|"[^"<]*"))*)\s*$/.exec(body);
      if (!m) throw new Error(`malformed tag <${tag}>`);
      const attrs: Record<string, string> = {};
      for (const a of m[2]!.matchAll(/([A-Za-z_][\w:.-]*)=(?:'([^']*)'|"([^"]*)")/g)) {
        const raw = a[2] ?? a[3]!;
        if (raw.replace(entity, '').includes('&')) throw new Error(`bare & in attribute ${a[1]}`);
        attrs[a[1]!] = raw.replace(
          entity,
          (_, e: string) => ({ amp: '&', lt: '<', gt: '>', apos: "'", quot: '"' })[e]!,
        );
      }
      if (stack.length === 0) roots++;
      elements.push({ name: m[1]!, attrs });
      if (!selfClosing) stack.push(m[1]!);
    }
    i = gt + 1;
  }
  if (stack.length !== 0) throw new Error(`unclosed <${stack.join('>, <')}>`);
  if (roots !== 1) throw new Error(`${roots} root elements`);
  return { root: elements[0]!.name, elements };
}

describe('qemu-args', () => {
  it('exact arguments for one vport', () => {
    expect(qemuArguments([A])).toEqual([
      '-m',
      '512M',
      '-object',
      'memory-backend-memfd,id=mem,size=512M,share=on',
      '-machine',
      'q35,memory-backend=mem',
      '-device',
      'pcie-root-port,id=rp-npiv-7d3c5e0a,chassis=1,slot=0',
      '-device',
      '{"driver":"vfio-user-pci","id":"npiv-7d3c5e0a","bus":"rp-npiv-7d3c5e0a","socket":{"type":"unix","path":"/run/npiv-hba/7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50.sock"}}',
    ]);
  });

  it('one root port per device, consecutive chassis numbers, memory given once', () => {
    const args = qemuArguments([A, B], { memory: '4G', firstChassis: 7 });
    expect(args.filter((a) => a === '-object')).toHaveLength(1);
    expect(args).toContain('memory-backend-memfd,id=mem,size=4G,share=on');
    expect(args).toContain('pcie-root-port,id=rp-npiv-7d3c5e0a,chassis=7,slot=0');
    expect(args).toContain('pcie-root-port,id=rp-npiv-0badc0de,chassis=8,slot=0');
    const device = JSON.parse(args.at(-1)!);
    expect(device).toEqual({
      driver: 'vfio-user-pci',
      id: 'npiv-0badc0de',
      bus: 'rp-npiv-0badc0de',
      socket: { type: 'unix', path: B.socket },
    });
  });

  it('--devices-only leaves the memory set-up out', () => {
    expect(qemuArguments([A], { devicesOnly: true })[0]).toBe('-device');
    expect(qemuArguments([A], { devicesOnly: true })).toHaveLength(4);
  });

  it('shell form pairs each option with its value and quotes what the shell would split', () => {
    expect(shellQuote('q35,memory-backend=mem')).toBe('q35,memory-backend=mem');
    expect(shellQuote('{"a":1}')).toBe(`'{"a":1}'`);
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(formatShell(qemuArguments([A]))).toBe(
      [
        '-m 512M',
        '-object memory-backend-memfd,id=mem,size=512M,share=on',
        '-machine q35,memory-backend=mem',
        '-device pcie-root-port,id=rp-npiv-7d3c5e0a,chassis=1,slot=0',
        `-device '{"driver":"vfio-user-pci","id":"npiv-7d3c5e0a","bus":"rp-npiv-7d3c5e0a","socket":{"type":"unix","path":"/run/npiv-hba/7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50.sock"}}'`,
      ].join(' \\\n') + '\n',
    );
  });

  it('refuses sizes without a unit and chassis numbers out of range', () => {
    expect(parseMemorySize('2g')).toBe('2G');
    for (const bad of ['512', '0M', '-1G', '1.5G', '512MB', ''])
      expect(() => parseMemorySize(bad)).toThrow(VportUsageError);
    expect(parseChassis('255')).toBe(255);
    for (const bad of ['0', '256', 'x', '-1', '']) expect(() => parseChassis(bad)).toThrow(VportUsageError);
    expect(() => qemuArguments([A, B], { firstChassis: 255 })).toThrow(/no room for 2 root ports/);
  });
});

describe('libvirt-xml', () => {
  it('is well-formed: shared memfd memoryBacking and qemu:commandline with the same devices', () => {
    const xml = libvirtXml([A, B]);
    const { root, elements } = checkXml(xml);
    expect(root).toBe('domain');
    expect(elements[0]!.attrs['xmlns:qemu']).toBe('http://libvirt.org/schemas/domain/qemu/1.0');
    expect(elements.find((e) => e.name === 'source')!.attrs).toEqual({ type: 'memfd' });
    expect(elements.find((e) => e.name === 'access')!.attrs).toEqual({ mode: 'shared' });
    const values = elements.filter((e) => e.name === 'qemu:arg').map((e) => e.attrs.value);
    expect(values).toEqual(qemuArguments([A, B], { devicesOnly: true, firstChassis: 100 }));
    // the awkward socket path of B survives escaping
    expect(JSON.parse(values[7]!).socket.path).toBe("/srv/it's <&>.sock");
  });

  it('the checker itself rejects broken XML', () => {
    expect(() => checkXml('<a><b></a></b>')).toThrow();
    expect(() => checkXml("<a x='1 & 2'/>")).toThrow();
    expect(() => checkXml('<a/><b/>')).toThrow();
  });
});
