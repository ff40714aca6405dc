process.env.MY_TEST_VAR = 'value1';
console.log(process.env.MY_TEST_VAR);
process.env.NUM_VAR = 42;
console.log(typeof process.env.NUM_VAR, process.env.NUM_VAR);
delete process.env.MY_TEST_VAR;
console.log(process.env.MY_TEST_VAR, 'MY_TEST_VAR' in process.env);
console.log(typeof process.env);
console.log(process.env.SURELY_NOT_DEFINED_ANYWHERE);
