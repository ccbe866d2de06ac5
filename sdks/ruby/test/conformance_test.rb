# frozen_string_literal: true

require_relative "test_helper"
require "fileutils"
require "json"
require "tmpdir"

# The cross-SDK fixtures of tests/conformance (see its README.md): every Plinth SDK runs the
# same cases and must give the same answers (the Rust reference:
# crates/plinth/tests/all/conformance.rs).
class ConformanceTest < Minitest::Test
  include PlinthTestHelper

  FIXTURES = File.join(REPO_ROOT, "tests/conformance")
  CASES = JSON.parse(File.read(File.join(FIXTURES, "errors/cases.json")))["cases"]

  # Runs the block in a fresh empty working directory, so that nothing resolves against the
  # directory the tests started in.
  def elsewhere(&block)
    Dir.mktmpdir("plinth-elsewhere") { |dir| Dir.chdir(dir, &block) }
  end

  def test_every_error_case_has_its_kind_number_and_code
    assert_operator CASES.size, :>=, 8
    elsewhere do
      CASES.each do |c|
        path = File.join(FIXTURES, "errors", c["file"])
        err = if c["stage"] == "load"
                assert_raises(Plinth::Error, c["file"]) { Plinth::Plugin.from_file(path) }
              else
                Plinth::Plugin.from_file(path) do |p|
                  assert_raises(Plinth::Error, c["file"]) { p.call(c["function"]) }
                end
              end
        what = "#{c['file']} #{c['function']}: #{err.message}"
        assert_equal c["kind"].to_sym, err.kind, what
        assert_equal c["kind_code"], err.kind_code, what
        assert_equal c["code"], err.code, what
      end
    end
  end

  def test_error_kinds_are_the_runtimes
    assert_equal (1..Plinth::ERROR_KINDS.size).to_a, Plinth::ERROR_KINDS.keys
    assert_equal :trap, Plinth::ERROR_KINDS[7]
    assert_equal :timeout, Plinth::ERROR_KINDS[10]
    assert_equal Plinth::ERROR_KINDS.size, Plinth::ERROR_KINDS.values.uniq.size
    err = Plinth::Error.new("x", kind: :closed)
    assert_equal [:closed, 22, -1], [err.kind, err.kind_code, err.code]
    assert_equal :other, Plinth::Error.new("x").kind
  end

  def test_a_manifest_file_resolves_its_paths_against_its_own_folder
    wasm = plugin_path("wasi_files")
    skip "#{wasm} is not built (run scripts/build-plugins.sh)" unless File.exist?(wasm)

    Dir.mktmpdir("plinth-paths") do |home|
      src = File.join(FIXTURES, "paths")
      FileUtils.mkdir(File.join(home, "data"))
      FileUtils.cp(File.join(src, "manifest.json"), home)
      FileUtils.cp(File.join(src, "data/hello.txt"), File.join(home, "data"))
      FileUtils.cp(wasm, home)
      manifest = File.join(home, "manifest.json")
      elsewhere do # neither wasi_files.wasm nor data/ is here
        out = Plinth::Plugin.from_file(manifest, wasi: true) { |p| p.call("copy_file", "/data/hello.txt") }
        assert_equal "/data/hello.txt.out", out
        assert_equal File.binread(File.join(src, "data/hello.txt")), File.binread(File.join(home, "data/hello.txt.out"))
        # Plugin.new(Pathname) and CompiledPlugin.new(Pathname) load the same way.
        out = Plinth::Plugin.open(Pathname(manifest), wasi: true) { |p| p.call("copy_file", "/data/hello.txt") }
        assert_equal "/data/hello.txt.out", out
        compiled = Plinth::CompiledPlugin.new(Pathname(manifest), wasi: true)
        out = compiled.instance { |p| p.call("copy_file", "/data/hello.txt") }
        assert_equal "/data/hello.txt.out", out
        compiled.close
      end
    end
  end
end
