const fs = require('fs');
const os = require('os');
const util = require('util');
try { fs.statSync('/tmp/jscompat-work/no-such'); } catch (e) {
  console.log(e.errno, os.constants.errno.ENOENT === -e.errno);
  console.log(util.getSystemErrorName(e.errno));
}
try { fs.mkdirSync('/tmp/jscompat-work'); } catch (e) {
  console.log(e.errno, util.getSystemErrorName(e.errno));
}
