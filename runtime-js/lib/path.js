// `path`: POSIX paths (npm `path-browserify`, Node's own posix implementation), with `posix`
// and `win32` as Node exposes them.
import pathBrowserify from 'path-browserify';

const path = {};
// Node's error for a path that is not a string (ERR_INVALID_ARG_TYPE).
for (const [name, value] of Object.entries(pathBrowserify)) {
  path[name] = typeof value !== 'function' ? value : {
    [name](...args) {
      try {
        return Reflect.apply(value, path, args);
      } catch (error) {
        if (error instanceof TypeError && error.code === undefined) {
          error.code = 'ERR_INVALID_ARG_TYPE';
          error.message = error.message.replace(/^Path must be a string\. Received (.*)$/,
            (whole, received) => `The "path" argument must be of type string. Received ${received}`);
        }
        throw error;
      }
    },
  }[name];
}
// Node's format (an `ext` without its dot gets one, as since Node 20).
path.format = function format(pathObject) {
  if (pathObject === null || typeof pathObject !== 'object') {
    const error = new TypeError(`The "pathObject" argument must be of type object. Received ${pathObject === null ? 'null' : `type ${typeof pathObject} (${String(pathObject)})`}`);
    error.code = 'ERR_INVALID_ARG_TYPE';
    throw error;
  }
  const dir = pathObject.dir || pathObject.root;
  const ext = pathObject.ext ? `${pathObject.ext[0] === '.' ? '' : '.'}${pathObject.ext}` : '';
  const base = pathObject.base || `${pathObject.name || ''}${ext}`;
  if (!dir) return base;
  return dir === pathObject.root ? `${dir}${base}` : `${dir}/${base}`;
};
path.posix = path;
path.win32 = path;
path.toNamespacedPath = (p) => p;
path.matchesGlob = undefined;
delete path.matchesGlob;

export const { resolve, dirname, basename, join, relative, normalize, isAbsolute, extname, sep, delimiter, parse, format } = path;
export default path;
