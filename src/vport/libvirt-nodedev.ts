/**
 * libvirt's node-device XML of a vHBA (an NPIV vport of a host FC HBA, as `virsh nodedev-create`
 * takes it and `virsh nodedev-dumpxml` prints it), read and written for `vport define
 * --libvirt-xml` and `vport export --libvirt-xml`:
 *
 *   <device>
 *     <parent>scsi_host5</parent>
 *     <capability type='scsi_host'>
 *       <capability type='fc_host'>
 *         <wwnn>5001a4a123456788</wwnn>
 *         <wwpn>5001a4a123456789</wwpn>
 *       </capability>
 *     </capability>
 *   </device>
 *
 * Only the port and node names map onto a vport definition (docs/vports.md says what does not).
 * The file comes from elsewhere, so the reader is strict and bounded: a small subset of XML
 * (elements, quoted attributes, text, comments, an XML declaration, the predefined and numeric
 * character references), no DOCTYPE, no entity declarations, no CDATA, a limit on depth and on
 * the number of elements; anything else is refused with the reason.
 */
import { formatParentSpec, parseParentSpec } from '../host/vport.js';
import { parseWwn } from '../util/wwn.js';
import type { VportDefinition } from './definition.js';
import { VportUsageError } from './errors.js';

const MAX_DEPTH = 8;
const MAX_ELEMENTS = 64;
const MAX_ATTRIBUTES = 8;

interface XmlElement {
  name: string;
  attrs: Map<string, string>;
  children: XmlElement[];
  text: string;
}

/** What a nodedev vHBA description gives. */
export interface NodedevNames {
  wwpn: bigint;
  wwnn: bigint;
  /** the <parent> element's text (e.g. scsi_host5), when there is one; not part of a definition */
  parent?: string;
  /** the fabric_wwn of the fc_host capability or the parent, when given; not part of a definition */
  fabricWwn?: string;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.-]*/;
const PREDEFINED: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeText(raw: string, fail: (why: string) => never): string {
  return raw.replace(/&([^;&<>\s]{0,10});?/g, (whole, ref: string) => {
    if (!whole.endsWith(';')) fail(`a bare '&' (write &amp;)`);
    if (ref in PREDEFINED) return PREDEFINED[ref]!;
    const num = /^#x([0-9a-fA-F]{1,6})$/.exec(ref) ?? /^#([0-9]{1,7})$/.exec(ref);
    if (num) {
      const code = Number.parseInt(num[1]!, ref.startsWith('#x') ? 16 : 10);
      if (code > 0 && code <= 0x10ffff && !(code >= 0xd800 && code <= 0xdfff)) return String.fromCodePoint(code);
    }
    return fail(`the entity reference &${ref}; (only the predefined ones and character references are read)`);
  });
}

/** Parses the XML subset above into one root element. */
export function parseSmallXml(text: string, file: string): XmlElement {
  let pos = 0;
  let elements = 0;
  const fail = (why: string): never => {
    const line = text.slice(0, pos).split('\n').length;
    throw new VportUsageError(`${file}: line ${line}: ${why}`);
  };
  const skipMisc = (allowDecl: boolean) => {
    for (;;) {
      const ws = /^\s*/.exec(text.slice(pos))![0];
      pos += ws.length;
      if (text.startsWith('<!--', pos)) {
        const end = text.indexOf('-->', pos + 4);
        if (end < 0) fail('an unterminated comment');
        pos = end + 3;
      } else if (allowDecl && pos === 0 && text.startsWith('<?xml', pos)) {
        const end = text.indexOf('?>', pos);
        if (end < 0) fail('an unterminated XML declaration');
        pos = end + 2;
      } else return;
    }
  };
  const refuseSpecial = () => {
    if (text.startsWith('<!DOCTYPE', pos) || text.startsWith('<!ENTITY', pos))
      fail('a DOCTYPE or entity declaration (refused: a nodedev description has none)');
    if (text.startsWith('<![CDATA[', pos)) fail('a CDATA section (not read)');
    if (text.startsWith('<?', pos) || text.startsWith('<!', pos)) fail('a processing instruction or declaration');
  };
  const element = (depth: number): XmlElement => {
    if (depth > MAX_DEPTH) fail(`elements nested deeper than ${MAX_DEPTH}`);
    if (++elements > MAX_ELEMENTS) fail(`more than ${MAX_ELEMENTS} elements`);
    refuseSpecial();
    if (text[pos] !== '<') fail('expected an element');
    pos++;
    const name = NAME.exec(text.slice(pos))?.[0] ?? fail('expected an element name after <');
    pos += name.length;
    const el: XmlElement = { name, attrs: new Map(), children: [], text: '' };
    for (;;) {
      const ws = /^\s*/.exec(text.slice(pos))![0];
      pos += ws.length;
      if (text.startsWith('/>', pos)) {
        pos += 2;
        return el;
      }
      if (text[pos] === '>') {
        pos++;
        break;
      }
      if (ws.length === 0) fail(`expected whitespace, '>' or '/>' in <${name}>`);
      const attr = NAME.exec(text.slice(pos))?.[0] ?? fail(`a malformed attribute in <${name}>`);
      pos += attr.length;
      const m =
        /^\s*=\s*(?:'([^'<]*)'|"([^"<]*)")/.exec(text.slice(pos)) ?? fail(`attribute ${attr} needs a quoted value`);
      pos += m[0].length;
      if (el.attrs.has(attr)) fail(`attribute ${attr} given twice in <${name}>`);
      if (el.attrs.size >= MAX_ATTRIBUTES) fail(`more than ${MAX_ATTRIBUTES} attributes in <${name}>`);
      el.attrs.set(attr, decodeText(m[1] ?? m[2]!, fail));
    }
    for (;;) {
      const lt = text.indexOf('<', pos);
      if (lt < 0) fail(`<${name}> is not closed`);
      el.text += decodeText(text.slice(pos, lt), fail);
      pos = lt;
      if (text.startsWith('</', pos)) {
        const close = /^<\/([A-Za-z_][A-Za-z0-9_.-]*)\s*>/.exec(text.slice(pos)) ?? fail('a malformed end tag');
        if (close[1] !== name) fail(`</${close[1]}> closes <${name}>`);
        pos += close[0].length;
        return el;
      }
      if (text.startsWith('<!--', pos)) {
        const end = text.indexOf('-->', pos + 4);
        if (end < 0) fail('an unterminated comment');
        pos = end + 3;
        continue;
      }
      el.children.push(element(depth + 1));
    }
  };
  skipMisc(true);
  refuseSpecial();
  const root = element(1);
  skipMisc(false);
  if (pos !== text.length) fail('text after the root element');
  return root;
}

/** The single child `name` (with type `type`, if given), or null; two are an error. */
function child(el: XmlElement, name: string, file: string, type?: string): XmlElement | null {
  const found = el.children.filter((c) => c.name === name && (type === undefined || c.attrs.get('type') === type));
  const what = type === undefined ? `<${name}>` : `<${name} type='${type}'>`;
  if (found.length > 1) throw new VportUsageError(`${file}: <${el.name}> holds ${what} more than once`);
  return found[0] ?? null;
}

function onlyChildren(el: XmlElement, allowed: readonly string[], file: string): void {
  for (const c of el.children)
    if (!allowed.includes(c.name))
      throw new VportUsageError(
        `${file}: <${c.name}> in <${el.name}> is not part of a vHBA description (expected ${allowed.map((a) => `<${a}>`).join(', ')})`,
      );
}

function wwnOf(el: XmlElement, name: 'wwpn' | 'wwnn', file: string): bigint {
  const w = child(el, name, file);
  if (w === null) throw new VportUsageError(`${file}: <capability type='fc_host'> has no <${name}>`);
  try {
    return parseWwn(w.text.trim(), name.toUpperCase());
  } catch (err) {
    throw new VportUsageError(`${file}: <${name}>: ${(err as Error).message}`);
  }
}

/** The names of a nodedev vHBA description (`virsh nodedev-create` input or `nodedev-dumpxml` output). */
export function parseNodedevXml(text: string, file: string): NodedevNames {
  const root = parseSmallXml(text, file);
  if (root.name !== 'device') throw new VportUsageError(`${file}: the root element is <${root.name}>, not <device>`);
  // name/path/driver/devnode are what nodedev-dumpxml adds about the live device: read past them.
  onlyChildren(root, ['name', 'path', 'devnode', 'driver', 'parent', 'capability'], file);
  const scsiHost = child(root, 'capability', file, 'scsi_host');
  if (scsiHost === null || root.children.filter((c) => c.name === 'capability').length !== 1)
    throw new VportUsageError(`${file}: <device> must hold exactly one <capability type='scsi_host'>`);
  onlyChildren(scsiHost, ['host', 'unique_id', 'capability'], file);
  const fc = child(scsiHost, 'capability', file, 'fc_host');
  if (fc === null)
    throw new VportUsageError(`${file}: <capability type='scsi_host'> has no <capability type='fc_host'>`);
  onlyChildren(fc, ['wwnn', 'wwpn', 'fabric_wwn'], file);
  const wwpn = wwnOf(fc, 'wwpn', file);
  const wwnn = wwnOf(fc, 'wwnn', file);
  if (wwpn === wwnn) throw new VportUsageError(`${file}: <wwpn> and <wwnn> must differ`);
  const parentEl = child(root, 'parent', file);
  const parent = parentEl?.text.trim() || undefined;
  const fabricWwn = child(fc, 'fabric_wwn', file)?.text.trim() || parentEl?.attrs.get('fabric_wwn') || undefined;
  return { wwpn, wwnn, ...(parent !== undefined ? { parent } : {}), ...(fabricWwn !== undefined ? { fabricWwn } : {}) };
}

const hex16 = (wwn: bigint) => wwn.toString(16).padStart(16, '0');

/**
 * The nodedev description of a definition. A host backend whose parent is `hostN` becomes
 * `<parent>scsi_hostN</parent>`; a parent given by WWPN is left out (libvirt's parent_wwpn
 * needs the parent's WWNN too, which a definition does not hold), as is any other backend.
 */
export function nodedevXml(def: VportDefinition): string {
  let parent: string | null = null;
  if (def.backend.type === 'host') {
    const spec = parseParentSpec(def.backend.parent);
    const canonical = formatParentSpec(spec);
    const m = /^host([0-9]+)$/.exec(canonical);
    if (m) parent = `scsi_host${m[1]}`;
  }
  return [
    '<device>',
    ...(parent !== null ? [`  <parent>${parent}</parent>`] : []),
    "  <capability type='scsi_host'>",
    "    <capability type='fc_host'>",
    `      <wwnn>${hex16(def.wwnn)}</wwnn>`,
    `      <wwpn>${hex16(def.wwpn)}</wwpn>`,
    '    </capability>',
    '  </capability>',
    '</device>',
    '',
  ].join('\n');
}
