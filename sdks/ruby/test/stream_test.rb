# frozen_string_literal: true

require_relative "test_helper"

class StreamTest < Minitest::Test
  include PlinthTestHelper

  # Streams through plinth:host/env directly: echo copies 64 KiB chunks from input to output;
  # never_reads writes "done" without reading; flood writes 64 KiB chunks until the output
  # closes; host calls the host function `note`, then echoes.
  STREAMING_WAT = <<~WAT
    (module
      (import "plinth:host/env" "stream_read" (func $sread (param i32 i32) (result i32)))
      (import "plinth:host/env" "stream_write" (func $swrite (param i32 i32) (result i32)))
      (import "extism:host/user" "note" (func $note (param i64) (result i64)))
      (memory (export "memory") 4)
      (data (i32.const 16) "done")
      (func $echo (export "echo") (result i32) (local $n i32)
        (block $done (loop $next
          (local.set $n (call $sread (i32.const 1024) (i32.const 65536)))
          (br_if $done (i32.eqz (local.get $n)))
          (if (i32.lt_s (local.get $n) (i32.const 0)) (then (return (i32.const 1))))
          (if (i32.lt_s (call $swrite (i32.const 1024) (local.get $n)) (i32.const 0))
            (then (return (i32.const 2))))
          (br $next)))
        (i32.const 0))
      (func (export "never_reads") (result i32)
        (drop (call $swrite (i32.const 16) (i32.const 4))) (i32.const 0))
      (func (export "flood") (result i32)
        (loop $next
          (br_if $next (i32.ge_s (call $swrite (i32.const 1024) (i32.const 65536)) (i32.const 0))))
        (i32.const 0))
      (func (export "host") (result i32)
        (drop (call $note (i64.const 0)))
        (call $echo)))
  WAT

  # Does not stream: echo copies its whole input through Extism's input and output.
  CLASSIC_WAT = <<~WAT
    (module
      (import "extism:host/env" "input_length" (func $input_length (result i64)))
      (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
      (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
      (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
      (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
      (memory 1)
      (func (export "echo") (result i32) (local $n i64) (local $h i64) (local $i i64)
        (local.set $n (call $input_length)) (local.set $h (call $alloc (local.get $n)))
        (block $d (loop $l (br_if $d (i64.ge_u (local.get $i) (local.get $n)))
          (call $store_u8 (i64.add (local.get $h) (local.get $i)) (call $input_load_u8 (local.get $i)))
          (local.set $i (i64.add (local.get $i) (i64.const 1))) (br $l)))
        (call $output_set (local.get $h) (local.get $n)) (i32.const 0)))
  WAT

  def setup
    @notes = []
    @note = Plinth::HostFunction.new("note", params: [:i64], results: [:i64]) do |plugin, _inputs, outputs|
      @notes << plugin.host_context
      raise "stop here" if plugin.host_context == :fail

      outputs[0] = 0
    end
    @plugin = Plinth::Plugin.new(STREAMING_WAT, functions: [@note])
  end

  def teardown
    @plugin.close
  end

  def pattern(n)
    Array.new(n) { |i| (i * 7 + i / 251) & 0xff }.pack("C*")
  end

  def test_echo_of_megabytes_from_io_to_io
    input = pattern(3 << 20)
    out = StringIO.new("".b)
    stats = @plugin.call_stream("echo", StringIO.new(input), out)
    assert_equal input, out.string
    assert_equal Plinth::StreamStats.new(input.bytesize, input.bytesize), stats

    # A String input, a nil input, a nil output.
    out = StringIO.new("".b)
    assert_equal 3, @plugin.call_stream("echo", "abc", out).output_bytes
    assert_equal "abc", out.string
    assert_equal Plinth::StreamStats.new(0, 0), @plugin.call_stream("echo", nil, nil)
    assert_equal 5, @plugin.call_stream("echo", "12345", nil).output_bytes
    # A plug-in that never reads never touches the input.
    out = StringIO.new("".b)
    @plugin.call_stream("never_reads", Object.new, out)
    assert_equal "done", out.string
  end

  def test_output_comes_before_the_input_ends
    r, w = IO.pipe
    out_r, out_w = IO.pipe
    call = Thread.new { @plugin.call_stream("echo", r, out_w) }
    3.times do |i|
      line = "line #{i}\n"
      w.write(line)
      w.flush
      # Each line comes out while the input is still open (a generous bound, not a timing).
      assert IO.select([out_r], nil, nil, 30), "line #{i} did not come out while the input was open"
      assert_equal line, out_r.readpartial(100)
    end
    w.close
    stats = call.value
    assert_equal 21, stats.input_bytes
  ensure
    [r, w, out_r, out_w].each { |io| io.close unless io.closed? }
  end

  # Gives its bytes, then raises.
  class BrokenInput
    def initialize(data)
      @data = data
    end

    def read(n)
      raise IOError, "disk on fire" if @data.empty?

      chunk = @data.byteslice(0, n)
      @data = @data.byteslice(n..) || "".b
      chunk
    end
  end

  def test_a_failing_input
    input = pattern(300_000)
    out = StringIO.new("".b)
    err = assert_raises(Plinth::Error) { @plugin.call_stream("echo", BrokenInput.new(input), out) }
    assert_equal :stream, err.kind
    assert_equal 26, err.kind_code
    assert_instance_of IOError, err.cause
    assert_includes err.message, "disk on fire"
    assert_equal input, out.string, "what came before the failure went through"

    out = StringIO.new("".b)
    assert_equal 4, @plugin.call_stream("echo", "fine", out).output_bytes, "the plug-in works after it"
    assert_equal "fine", out.string
  end

  # Takes +max+ bytes, then raises.
  class FullOutput
    attr_reader :taken

    def initialize(max)
      @max = max
      @taken = 0
    end

    def write(bytes)
      raise Errno::EPIPE, "client went away" if @taken + bytes.bytesize > @max

      @taken += bytes.bytesize
    end
  end

  def test_a_failing_output
    out = FullOutput.new(300_000)
    err = assert_raises(Plinth::Error) { @plugin.call_stream("flood", nil, out) }
    assert_equal :stream, err.kind
    assert_instance_of Errno::EPIPE, err.cause
    assert_includes err.message, "client went away"
    assert_equal 4 * 65_536, out.taken, "flood stopped at the first refused write"
  end

  def test_the_output_limit
    @plugin.output_limit = 200_000
    out = StringIO.new("".b)
    err = assert_raises(Plinth::Error) { @plugin.call_stream("flood", nil, out) }
    assert_equal :stream, err.kind
    assert_includes err.message, "limit of 200000 bytes"
    assert_equal 3 * 65_536, out.string.bytesize, "the whole chunks under the limit were written"

    @plugin.output_limit = nil
    out = FullOutput.new(1 << 20)
    err = assert_raises(Plinth::Error) { @plugin.call_stream("flood", nil, out) }
    assert_instance_of Errno::EPIPE, err.cause
    assert_equal 1 << 20, out.taken
    assert_raises(ArgumentError) { @plugin.output_limit = -1 }
  end

  def test_a_plugin_that_does_not_stream
    Plinth::Plugin.open(CLASSIC_WAT) do |p|
      input = pattern(100_000)
      out = StringIO.new("".b)
      assert_equal Plinth::StreamStats.new(100_000, 100_000), p.call_stream("echo", StringIO.new(input), out)
      assert_equal input, out.string
      # Its whole input is read first: a failing input fails the call before anything is written.
      out = StringIO.new("".b)
      err = assert_raises(Plinth::Error) { p.call_stream("echo", BrokenInput.new(input), out) }
      assert_equal :stream, err.kind
      assert_equal "", out.string
      assert_equal "hi", p.call("echo", "hi")
    end
    assert_equal "classic", @plugin.call("echo", "classic"), "a streaming plug-in called the classic way"
  end

  def test_host_functions_see_the_host_context
    out = StringIO.new("".b)
    @plugin.call_stream("host", "x", out, host_context: :mine)
    assert_equal [:mine], @notes
    assert_equal "x", out.string
    err = assert_raises(Plinth::Error) { @plugin.call_stream("host", "x", out, host_context: :fail) }
    assert_equal :host_function, err.kind
    assert_equal "stop here", err.cause.message
  end

  def test_pdk_plugins
    path = plugin_path("stream_filter")
    skip "#{path} is not built (run scripts/build-plugins.sh)" unless File.exist?(path)

    logs = "ok 1\nERROR disk\nok 2\nERROR net\n"
    %w[stream_filter extism_line_filter].each do |name|
      Plinth::Plugin.open(plugin_bytes(name)) do |p|
        out = StringIO.new("".b)
        p.call_stream("grep", StringIO.new(logs), out)
        assert_equal "ERROR disk\nERROR net\n", out.string, name
      end
    end
  end

  def test_closed
    @plugin.close
    err = assert_raises(Plinth::Error) { @plugin.call_stream("echo", "", nil) }
    assert_equal :closed, err.kind
  end
end
