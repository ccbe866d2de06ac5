package plinth;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.extism.sdk.ExtismException;
import org.extism.sdk.HostFunction;
import org.extism.sdk.HostUserData;
import org.extism.sdk.LibExtism.ExtismValType;
import org.extism.sdk.Plugin;
import org.extism.sdk.manifest.Manifest;
import org.extism.sdk.wasm.WasmSourceResolver;
import org.junit.jupiter.api.Test;

/**
 * The unmodified Extism Java SDK (org.extism.sdk:extism from Maven Central, through JNA) on
 * libplinth installed as libextism.
 */
class ExtismSdkOnPlinthTest {
  static final Path ROOT = Path.of(System.getProperty("plinth.root"));
  static final Path COUNT_VOWELS = ROOT.resolve("examples/plugins/count_vowels.wat");

  static final String GREET_PLUGIN =
      "(module"
          + " (import \"extism:host/user\" \"greet\" (func $greet (param i64) (result i64)))"
          + " (import \"extism:host/env\" \"input_offset\" (func $input_offset (result i64)))"
          + " (import \"extism:host/env\" \"length\" (func $length (param i64) (result i64)))"
          + " (import \"extism:host/env\" \"output_set\" (func $output_set (param i64 i64)))"
          + " (memory 1)"
          + " (func (export \"run\") (result i32) (local $h i64)"
          + "   (local.set $h (call $greet (call $input_offset)))"
          + "   (call $output_set (local.get $h) (call $length (local.get $h))) (i32.const 0)))";

  @Test
  void countVowelsThroughAManifestWithAHash() {
    var source = new WasmSourceResolver().resolve(COUNT_VOWELS);
    var manifest = new Manifest(List.of(source));
    try (var plugin = new Plugin(manifest, false, null)) {
      assertEquals(
          "{\"count\":3,\"total\":3,\"vowels\":\"aeiouAEIOU\"}",
          plugin.call("count_vowels", "Hello, world"));
      // Vars carry over on the same plug-in.
      assertEquals(
          "{\"count\":3,\"total\":6,\"vowels\":\"aeiouAEIOU\"}",
          plugin.call("count_vowels", "Hello, world"));
      assertTrue(plugin.updateConfig("{\"vowels\":\"o\"}"));
      assertEquals(
          "{\"count\":2,\"total\":8,\"vowels\":\"o\"}", plugin.call("count_vowels", "Hello, world"));
    }
  }

  @Test
  void hostFunctionRoundTrip() {
    var calls = new AtomicInteger();
    HostFunction<HostUserData> greet =
        new HostFunction<>(
            "greet",
            new ExtismValType[] {ExtismValType.I64},
            new ExtismValType[] {ExtismValType.I64},
            (plugin, params, returns, data) -> {
              calls.incrementAndGet();
              plugin.returnString(returns[0], "Hello, " + plugin.inputString(params[0]) + "!");
            },
            java.util.Optional.empty());
    var wasm = GREET_PLUGIN.getBytes(StandardCharsets.UTF_8);
    try (var plugin = new Plugin(wasm, false, new HostFunction[] {greet})) {
      assertEquals("Hello, Ada!", plugin.call("run", "Ada"));
      assertEquals("Hello, Grace!", plugin.call("run", "Grace"));
    }
    assertEquals(2, calls.get());
  }

  @Test
  void errorsAreExceptions() {
    var source = new WasmSourceResolver().resolve(COUNT_VOWELS);
    try (var plugin = new Plugin(new Manifest(List.of(source)), false, null)) {
      var e = assertThrows(ExtismException.class, () -> plugin.call("missing", "x"));
      assertTrue(e.getMessage().contains("not found"), e.getMessage());
    }
    var bad = assertThrows(
        ExtismException.class,
        () -> new Plugin("not a plug-in".getBytes(StandardCharsets.UTF_8), false, null));
    assertTrue(bad.getMessage().length() > 0);
  }
}
