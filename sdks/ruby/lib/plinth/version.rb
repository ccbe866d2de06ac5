# frozen_string_literal: true

module Plinth
  # Version of this gem (not of libplinth: see {Plinth.library_version}).
  VERSION = "0.1.0"
end
