console.error('to stderr');
console.warn('warn to stderr');
console.log('to stdout');
console.info('info to stdout');
console.debug('debug to stdout');
