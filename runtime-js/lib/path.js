// `path`: POSIX paths (npm `path-browserify`, Node's own posix implementation), with `posix`
// and `win32` as Node exposes them.
import pathBrowserify from 'path-browserify';

const path = { ...pathBrowserify };
path.posix = path;
path.win32 = path;
path.toNamespacedPath = (p) => p;
path.matchesGlob = undefined;
delete path.matchesGlob;

export const { resolve, dirname, basename, join, relative, normalize, isAbsolute, extname, sep, delimiter, parse, format } = path;
export default path;
