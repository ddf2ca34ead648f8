// Unit tests of the extension's pure modules (no JupyterLab imports): ts-jest, jsdom.
module.exports = {
  testEnvironment: 'jsdom',
  transform: { '^.+\\.tsx?$': ['ts-jest', { tsconfig: { types: ['jest'], esModuleInterop: true, strict: true, target: 'ES2018', module: 'commonjs', lib: ['DOM', 'ES2018'] } }] },
  testRegex: 'src/__tests__/.*\\.spec\\.ts$',
  moduleFileExtensions: ['ts', 'js', 'json']
};
