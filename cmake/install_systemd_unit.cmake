# Installs deploy/pals.service with ExecStart / ExecStopPost naming the pals of the prefix it is
# installed to (CMAKE_INSTALL_PREFIX here is the prefix of `cmake --install --prefix`), since a
# unit needs absolute paths. Set by the install(CODE) before it: PALS_UNIT_SOURCE,
# PALS_UNIT_BINDIR, PALS_UNIT_DIR (both relative to the prefix, or absolute).
file(READ "${PALS_UNIT_SOURCE}" _unit)
if(IS_ABSOLUTE "${PALS_UNIT_BINDIR}")
    set(_bin "${PALS_UNIT_BINDIR}")
else()
    set(_bin "${CMAKE_INSTALL_PREFIX}/${PALS_UNIT_BINDIR}")
endif()
string(REPLACE "/usr/local/bin/pals" "${_bin}/pals" _unit "${_unit}")
if(IS_ABSOLUTE "${PALS_UNIT_DIR}")
    set(_dir "$ENV{DESTDIR}${PALS_UNIT_DIR}")
else()
    set(_dir "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/${PALS_UNIT_DIR}")
endif()
message(STATUS "Installing: ${_dir}/pals.service")
file(WRITE "${_dir}/pals.service" "${_unit}")
