# Build of the npiv_native shim (Linux only): node-addon-api with C++ exceptions,
# Node-API version 8 (type tags, detachable ArrayBuffers), hardened flags.
{
  'targets': [
    {
      'target_name': 'npiv_native',
      'sources': [
        'src/addon.cc',
        'src/common.cc',
        'src/cred.cc',
        'src/fd.cc',
        'src/mem.cc',
        'src/poll.cc',
        'src/sock.cc',
        'src/lock.cc',
        'src/sg.cc',
        'src/uevent.cc',
        'src/notify.cc',
      ],
      'dependencies': [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
      ],
      'defines': [
        'NAPI_VERSION=8',
        'NODE_ADDON_API_DISABLE_DEPRECATED',
      ],
      'cflags': [
        '-fstack-protector-strong',
        '-U_FORTIFY_SOURCE',
        '-D_FORTIFY_SOURCE=2',
      ],
      'configurations': {
        # node's common.gypi builds Release with -O3; -O2 is enough for syscall glue.
        'Release': {'cflags!': ['-O3'], 'cflags': ['-O2']},
      },
      'ldflags': ['-Wl,-z,relro', '-Wl,-z,now', '-Wl,-z,noexecstack'],
      'conditions': [
        ['OS!="linux"', {
          'actions': [{
            'action_name': 'unsupported_os',
            'inputs': [],
            'outputs': ['unsupported'],
            'action': ['sh', '-c', 'echo "npiv_native supports Linux only" >&2; exit 1'],
          }],
        }],
      ],
    },
  ],
}
