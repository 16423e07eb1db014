# Compiler warnings for every PALS target (STYLE.md 3.4).
function(pals_set_warnings target)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor)
    if(PALS_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()
