import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          // Property tests (fast-check) run with the unit tests; the fuzz targets (test/fuzz/) do not.
          include: ['test/unit/**/*.test.ts', 'test/property/**/*.test.ts'],
          // The CLI tests spawn bin/npiv-hba.js (dist/): rebuild dist/ first when src/ is newer.
          globalSetup: ['test/support/build-dist.ts'],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'guest',
          include: ['test/guest/**/*.test.ts'],
          globalSetup: ['test/guest/support/global-setup.ts'],
          // Real QEMU + real Linux guest under TCG: slow, one at a time, each run under its own timeout.
          testTimeout: 900_000,
          hookTimeout: 900_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
