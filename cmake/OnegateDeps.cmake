# Finds every library onegate links. A missing one stops configure with the
# Debian package that provides it, because that is the fix an admin needs.
find_package(PkgConfig)

function(onegate_missing what pkg)
  message(FATAL_ERROR "onegate: ${what} not found. Install it with: apt-get install ${pkg}  (or run: make deps)")
endfunction()

# BoringSSL: Debian's android-libboringssl-dev by default, or a user build via
# -DBORINGSSL_ROOT=/path (expects include/ and lib/ or build/ beneath it).
set(BORINGSSL_ROOT "" CACHE PATH "Root of a BoringSSL build to use instead of Debian's android-libboringssl-dev")
if(BORINGSSL_ROOT)
  set(_bssl_inc_hints ${BORINGSSL_ROOT}/include)
  set(_bssl_lib_hints ${BORINGSSL_ROOT}/lib ${BORINGSSL_ROOT}/build ${BORINGSSL_ROOT}/build/ssl ${BORINGSSL_ROOT}/build/crypto)
  set(_bssl_opts NO_DEFAULT_PATH)
else()
  set(_bssl_inc_hints /usr/include/android)
  set(_bssl_lib_hints /usr/lib/${CMAKE_LIBRARY_ARCHITECTURE}/android)
  set(_bssl_opts NO_DEFAULT_PATH)
endif()
find_path(BORINGSSL_INCLUDE_DIR openssl/base.h HINTS ${_bssl_inc_hints} ${_bssl_opts})
find_library(BORINGSSL_SSL_LIBRARY NAMES ssl HINTS ${_bssl_lib_hints} ${_bssl_opts})
find_library(BORINGSSL_CRYPTO_LIBRARY NAMES crypto HINTS ${_bssl_lib_hints} ${_bssl_opts})
if(NOT BORINGSSL_INCLUDE_DIR OR NOT BORINGSSL_SSL_LIBRARY OR NOT BORINGSSL_CRYPTO_LIBRARY)
  onegate_missing("BoringSSL (openssl/base.h, libssl, libcrypto)" "android-libboringssl-dev")
endif()
get_filename_component(_bssl_libdir ${BORINGSSL_SSL_LIBRARY} DIRECTORY)
add_library(boringssl::crypto UNKNOWN IMPORTED)
set_target_properties(boringssl::crypto PROPERTIES
  IMPORTED_LOCATION ${BORINGSSL_CRYPTO_LIBRARY}
  INTERFACE_INCLUDE_DIRECTORIES ${BORINGSSL_INCLUDE_DIR}
  INTERFACE_LINK_OPTIONS "LINKER:-rpath,${_bssl_libdir}")
add_library(boringssl::ssl UNKNOWN IMPORTED)
set_target_properties(boringssl::ssl PROPERTIES
  IMPORTED_LOCATION ${BORINGSSL_SSL_LIBRARY}
  INTERFACE_LINK_LIBRARIES boringssl::crypto)
message(STATUS "onegate: BoringSSL from ${BORINGSSL_INCLUDE_DIR} and ${_bssl_libdir}")

# libevent 2.1: core, pthreads and extra (evhttp, evdns). Never libevent_openssl.
if(NOT PKG_CONFIG_FOUND)
  onegate_missing("pkg-config" "pkg-config")
endif()
pkg_check_modules(LIBEVENT_CORE IMPORTED_TARGET libevent_core>=2.1)
pkg_check_modules(LIBEVENT_PTHREADS IMPORTED_TARGET libevent_pthreads>=2.1)
pkg_check_modules(LIBEVENT_EXTRA IMPORTED_TARGET libevent_extra>=2.1)
if(NOT LIBEVENT_CORE_FOUND OR NOT LIBEVENT_PTHREADS_FOUND OR NOT LIBEVENT_EXTRA_FOUND)
  onegate_missing("libevent 2.1 (core, pthreads, extra)" "libevent-dev")
endif()

pkg_check_modules(PCRE2 IMPORTED_TARGET libpcre2-8)
if(NOT PCRE2_FOUND)
  onegate_missing("PCRE2 (8-bit)" "libpcre2-dev")
endif()

pkg_check_modules(LIBCONFIG IMPORTED_TARGET libconfig>=1.5)
if(NOT LIBCONFIG_FOUND)
  onegate_missing("libconfig" "libconfig-dev")
endif()

pkg_check_modules(JANSSON IMPORTED_TARGET jansson>=2.13)
if(NOT JANSSON_FOUND)
  onegate_missing("jansson (JSON for the ACME client)" "libjansson-dev")
endif()

pkg_check_modules(NGHTTP2 IMPORTED_TARGET libnghttp2>=1.52)
if(NOT NGHTTP2_FOUND)
  onegate_missing("nghttp2 (HTTP/2 framing, HPACK, flow control)" "libnghttp2-dev")
endif()

find_package(Threads REQUIRED)

if(ONEGATE_TESTS)
  find_package(GTest CONFIG QUIET)
  if(NOT GTest_FOUND)
    find_package(GTest QUIET)
  endif()
  if(NOT GTest_FOUND)
    onegate_missing("Google Test" "libgtest-dev")
  endif()
endif()
