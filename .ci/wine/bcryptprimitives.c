/* A stand-in for Windows' bcryptprimitives.dll, which Wine 8.0 lacks:
   Rust's standard library imports ProcessPrng from it. RtlGenRandom
   (advapi32's SystemFunction036) does the work. For the test runs only. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
