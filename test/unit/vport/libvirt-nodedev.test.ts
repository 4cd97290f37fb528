/** The libvirt nodedev vHBA XML reader/writer: what it reads, what it refuses, and the round trip. */
import { describe, expect, it } from 'vitest';
import type { VportDefinition } from '../../../src/vport/definition.js';
import { nodedevXml, parseNodedevXml, parseSmallXml } from '../../../src/vport/libvirt-nodedev.js';

const CREATE_XML = `<device>
  <parent>scsi_host5</parent>
  <capability type='scsi_host'>
    <capability type='fc_host'>
      <wwnn>5001a4a123456788</wwnn>
      <wwpn>5001a4a123456789</wwpn>
    </capability>
  </capability>
</device>
`;

// What nodedev-dumpxml prints for a live vHBA: extra elements about the device, fabric_wwn.
const DUMP_XML = `<?xml version="1.0"?>
<!-- a live vHBA -->
<device>
  <name>scsi_host6</name>
  <path>/sys/devices/pci0000:00/0000:00:04.0/host5/vport-5:0-0/host6</path>
  <parent>scsi_host5</parent>
  <capability type="scsi_host">
    <host>6</host>
    <unique_id>3</unique_id>
    <capability type="fc_host">
      <wwnn>2001001b32a9da4e</wwnn>
      <wwpn>2101001b32a9da4e</wwpn>
      <fabric_wwn>2002000573de9a81</fabric_wwn>
    </capability>
  </capability>
</device>`;

const DEF: VportDefinition = {
  uuid: '7d3c5e0a-2f4b-4c61-9a8e-0b1c2d3e4f50',
  wwpn: 0x5001a4a123456789n,
  wwnn: 0x5001a4a123456788n,
  backend: { type: 'host', parent: 'host5' },
  socket: '/run/npiv-hba/x.sock',
  autostart: false,
};

describe('parseNodedevXml', () => {
  it('reads the nodedev-create form: WWPN, WWNN and the parent name', () => {
    expect(parseNodedevXml(CREATE_XML, 'f.xml')).toEqual({
      wwpn: 0x5001a4a123456789n,
      wwnn: 0x5001a4a123456788n,
      parent: 'scsi_host5',
    });
  });

  it('reads nodedev-dumpxml output (declaration, comment, double quotes, name/path/host, fabric_wwn)', () => {
    expect(parseNodedevXml(DUMP_XML, 'f.xml')).toEqual({
      wwpn: 0x2101001b32a9da4en,
      wwnn: 0x2001001b32a9da4en,
      parent: 'scsi_host5',
      fabricWwn: '2002000573de9a81',
    });
  });

  it('round-trips a definition through nodedevXml', () => {
    const xml = nodedevXml(DEF);
    expect(xml).toBe(CREATE_XML);
    const back = parseNodedevXml(xml, 'f.xml');
    expect(back.wwpn).toBe(DEF.wwpn);
    expect(back.wwnn).toBe(DEF.wwnn);
    expect(back.parent).toBe('scsi_host5');
  });

  it('writes no <parent> for a backend that is not a hostN parent', () => {
    expect(nodedevXml({ ...DEF, backend: { type: 'none' } })).not.toContain('<parent>');
    expect(nodedevXml({ ...DEF, backend: { type: 'host', parent: '21:00:00:24:ff:12:34:56' } })).not.toContain(
      '<parent>',
    );
  });

  it.each([
    ['a DOCTYPE', `<!DOCTYPE device [<!ENTITY x "y">]>${CREATE_XML}`, /DOCTYPE or entity/],
    ['an entity reference', CREATE_XML.replace('scsi_host5', '&x;'), /entity reference &x;/],
    ['CDATA', CREATE_XML.replace('scsi_host5', '<![CDATA[a]]>'), /CDATA/],
    ['another root', '<domain/>', /root element is <domain>/],
    ['a missing wwpn', CREATE_XML.replace(/<wwpn>.*<\/wwpn>/, ''), /has no <wwpn>/],
    ['a bad wwnn', CREATE_XML.replace('5001a4a123456788', 'zz'), /<wwnn>:/],
    ['equal names', CREATE_XML.replace('5001a4a123456788', '5001a4a123456789'), /must differ/],
    ['an unknown element', CREATE_XML.replace('<wwnn>', '<bogus/><wwnn>'), /<bogus> in <capability> is not part/],
    ['no fc_host', '<device><capability type="scsi_host"/></device>', /no <capability type='fc_host'>/],
    ['two wwpn', CREATE_XML.replace('<wwnn>', '<wwpn>1</wwpn><wwnn>'), /more than once/],
    ['a mismatched end tag', '<device></devic>', /<\/devic> closes <device>/],
    ['an unclosed element', '<device><parent>x', /not closed/],
    ['trailing text', `${CREATE_XML}x`, /text after the root/],
  ])('refuses %s, naming it', (_what, xml, message) => {
    expect(() => parseNodedevXml(xml, 'f.xml')).toThrow(message);
  });

  it('bounds depth and element count', () => {
    expect(() => parseSmallXml('<a>'.repeat(20) + '</a>'.repeat(20), 'f.xml')).toThrow(/nested deeper/);
    expect(() => parseSmallXml(`<a>${'<b/>'.repeat(100)}</a>`, 'f.xml')).toThrow(/more than 64 elements/);
  });

  it('decodes the predefined and numeric character references', () => {
    expect(parseSmallXml('<a x="&lt;&#65;&#x42;">&amp;&quot;</a>', 'f').attrs.get('x')).toBe('<AB');
    expect(parseSmallXml('<a>&amp;&quot;</a>', 'f').text).toBe('&"');
    expect(() => parseSmallXml('<a>a & b</a>', 'f')).toThrow(/bare '&'/);
  });
});
