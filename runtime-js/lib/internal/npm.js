// The builtins implemented by well-kept npm packages, bundled at build time and loaded on first
// use (each `require` here is resolved by the bundler, not at run time).
const LOADERS = {
  assert: () => require('assert/'),
  buffer: () => require('buffer/'),
  events: () => require('events/'),
  querystring: () => require('querystring-es3'),
  stream: () => require('readable-stream'),
  string_decoder: () => require('string_decoder/'),
  url: () => require('url/'),
  util: () => require('util/'),
};

export function load(name) {
  return LOADERS[name]();
}
