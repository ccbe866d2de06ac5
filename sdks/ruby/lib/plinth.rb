# frozen_string_literal: true

# Plinth: run WebAssembly plug-ins (Extism ABI) from Ruby, over libplinth's C API.
#
#   require "plinth"
#   Plinth::Plugin.open({ wasm: [{ path: "checkout.wasm" }] }) do |plugin|
#     plugin.call_json("before_checkout_finalize", cart_total: 12_000, is_new_customer: true)
#   end
#
# libplinth is loaded from ENV["PLINTH_LIB"] (full path to libplinth.so), else found by the
# dynamic loader under the name "plinth" (LD_LIBRARY_PATH, ldconfig paths).
module Plinth
end

require_relative "plinth/version"
require_relative "plinth/error"
require_relative "plinth/native"
require_relative "plinth/source"
require_relative "plinth/call_frame"
require_relative "plinth/current_plugin"
require_relative "plinth/host_function"
require_relative "plinth/plugin"
require_relative "plinth/stream"
require_relative "plinth/async"
require_relative "plinth/logging"
