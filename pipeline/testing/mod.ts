/** Test harness for plugins and topologies: `TestDriver` runs them over the production code path. */
export {
  type OutputRecord,
  type PipeOptions,
  TestClock,
  TestDriver,
  type TestDriverOptions,
  TestInputTopic,
  TestOutputTopic,
} from "./test_driver.ts";
