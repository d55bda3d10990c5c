// The logic under test (src/model.ts, src/tryit.ts) is plain TypeScript with no JupyterLab
// imports, so ts-jest in a node environment is all it needs.
module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/test/**/*.spec.ts'],
  transform: {
    '^.+\\.tsx?$': ['ts-jest', { tsconfig: 'tsconfig.test.json' }]
  }
};
