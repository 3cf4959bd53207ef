// Package authenticode owns the PE/COFF Authenticode image digest exactly
// as edk2 computes it when it measures an EFI application into a TPM PCR
// or a TDX RTMR (OvmfPkg/Tcg/TdTcg2Dxe/MeasureBootPeCoff.c,
// SecurityPkg DxeTpm2MeasureBootLib): the image headers without the
// CheckSum field and the Certificate Table data-directory entry, then
// every section with SizeOfRawData > 0 in PointerToRawData order, then any
// data after SUM_OF_BYTES_HASHED up to the attribute certificate table.
// No zero padding is added (Microsoft's specification pads to 8 bytes;
// edk2 does not), the hash algorithm is a parameter (SHA-384 for RTMRs,
// SHA-256 to compare with osslsigncode and sbsign).
//
// It has its own small PE parser with bounds checks on every field it
// uses, modelled on edk2's PeCoffLoaderGetPeHeader: malformed or foreign
// input (not a PE, truncated, sections or certificate table outside the
// file) gives a *FormatError that names the offset and the problem, never
// a panic.
//
// github.com/foxboron/go-uefi's authenticode package was considered and
// not used: it zero-pads the hashed data to a multiple of 8 bytes, does not
// handle NumberOfRvaAndSizes <= 4, relies on debug/pe's leniency for
// bounds and copies the image several times.
package authenticode
