// The translation unit the shared precompiled header (pch.h) is built with.
