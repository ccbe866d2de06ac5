# frozen_string_literal: true

# Runs against the repository's libplinth unless PLINTH_LIB says otherwise.
REPO_ROOT = File.expand_path("../../..", __dir__)
ENV["PLINTH_LIB"] ||= File.join(REPO_ROOT, "target/libplinth-prefix/lib/libplinth.so")

require "minitest/autorun"
require "plinth"

module PlinthTestHelper
  PLUGINS = File.join(REPO_ROOT, "target/wasm-plugins")

  def plugin_path(name)
    File.join(PLUGINS, "#{name}.wasm")
  end

  def plugin_bytes(name)
    File.binread(plugin_path(name))
  end

  # Hostile plug-ins, as WAT: an endless loop and unbounded memory growth.
  HOSTILE_WAT = <<~WAT
    (module
      (memory 1)
      (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
      (func (export "grow") (result i32)
        (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        unreachable)
      (func (export "ok") (result i32) (i32.const 0)))
  WAT

  def rss_kib
    File.read("/proc/self/status")[/^VmRSS:\s+(\d+)/, 1].to_i
  end
end
