class Point {
  constructor(x, y) { this.x = x; this.y = y; }
}
console.log(new Point(1, 2));
class Empty {}
console.log(new Empty());
console.log(Point);
console.log(Object.create(null));
const o = Object.create(null);
o.k = 1;
console.log(o);
console.log([new Point(0, 0)]);
