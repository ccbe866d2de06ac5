# frozen_string_literal: true

require "base64"
require "json"
require "pathname"

module Plinth
  # Turns what {Plugin.new} accepts into what libplinth takes: a path, or bytes.
  # @api private
  module Source
    module_function

    # The path of a source that names a file (libplinth reads it), else nil.
    # @param source [String, Hash, Pathname, File]
    # @return [String, nil]
    def path(source)
      case source
      when Pathname then source.to_s
      when File then source.path
      end
    end

    # @param source [String, Hash]
    # @return [String] binary: wasm, WAT or a JSON manifest
    def bytes(source)
      case source
      when Hash then JSON.generate(manifest(source)).b
      when String then source.b
      else
        raise TypeError, "plug-in source must be a String of wasm/WAT bytes, a Hash manifest, " \
                         "a Pathname or a File (got #{source.class}); use Plugin.from_file for a path"
      end
    end

    # The OS error of opening +path+ (e.g. Errno::ENOENT), or nil when it opens: the cause
    # of a load failure of kind +:manifest+.
    def open_error(path)
      File.open(path, "rb") { nil }
      nil
    rescue SystemCallError => e
      e
    end

    # A manifest Hash with Ruby conveniences resolved: symbol keys, Pathname paths, and raw
    # bytes in +data:+ (base64-encoded here, as the manifest format wants).
    def manifest(hash)
      hash.each_with_object({}) do |(key, value), out|
        key = key.to_s
        out[key] =
          case key
          when "wasm" then Array(value).map { |w| wasm_entry(w) }
          when "config" then value.to_h { |k, v| [k.to_s, v.to_s] }
          else value
          end
      end
    end

    def wasm_entry(entry)
      entry = { path: entry } if entry.is_a?(Pathname)
      entry.each_with_object({}) do |(k, v), out|
        k = k.to_s
        out[k] =
          case k
          when "path" then v.to_s
          when "data" then Base64.strict_encode64(v.to_s.b)
          else v
          end
      end
    end
  end
end
