const util = require('util');
function Base() { this.base = true; }
Base.prototype.hello = function () { return 'hello from ' + this.name; };
function Child(name) { Base.call(this); this.name = name; }
util.inherits(Child, Base);
const c = new Child('kid');
console.log(c.hello(), c.base, c instanceof Base);
console.log(Child.super_ === Base);
console.log(Object.getPrototypeOf(Child.prototype) === Base.prototype);
