/*
 * Chrysalis stand-in for miniaudio.h (our own file, not miniaudio).
 *
 * The Go module zip of github.com/ollama/ollama drops every vendor/
 * directory, so llama.cpp's tools/mtmd/mtmd-helper.cpp cannot find
 * miniaudio. It only uses miniaudio to decode audio input for multimodal
 * models, which the Chrysalis engine does not serve. This header declares
 * exactly what mtmd-helper.cpp uses; every decoder call fails with
 * MA_ERROR, so audio input is reported as "not an audio file".
 */
#ifndef CHRYSALIS_MINIAUDIO_STUB_H
#define CHRYSALIS_MINIAUDIO_STUB_H

#include <stddef.h>

#ifndef MA_API
#define MA_API static
#endif

typedef unsigned long long ma_uint64;
typedef unsigned int ma_uint32;
typedef int ma_result;

#define MA_SUCCESS 0
#define MA_ERROR (-1)

typedef enum { ma_format_unknown = 0, ma_format_f32 = 5 } ma_format;
typedef enum { ma_encoding_format_unknown = 0, ma_encoding_format_wav = 1 } ma_encoding_format;

typedef struct {
    ma_format format;
    ma_uint32 channels;
    ma_uint32 sampleRate;
} ma_decoder_config;

typedef struct {
    int unused;
} ma_decoder;

MA_API ma_decoder_config ma_decoder_config_init(ma_format format, ma_uint32 channels, ma_uint32 sampleRate)
{
    ma_decoder_config c;
    c.format = format;
    c.channels = channels;
    c.sampleRate = sampleRate;
    return c;
}

MA_API ma_result ma_decoder_init_memory(const void *data, size_t size, const ma_decoder_config *config, ma_decoder *decoder)
{
    (void)data; (void)size; (void)config;
    if (decoder != NULL) {
        decoder->unused = 0;
    }
    return MA_ERROR;
}

MA_API ma_result ma_decoder_get_length_in_pcm_frames(ma_decoder *decoder, ma_uint64 *length)
{
    (void)decoder;
    if (length != NULL) {
        *length = 0;
    }
    return MA_ERROR;
}

MA_API ma_result ma_decoder_read_pcm_frames(ma_decoder *decoder, void *frames, ma_uint64 count, ma_uint64 *read)
{
    (void)decoder; (void)frames; (void)count;
    if (read != NULL) {
        *read = 0;
    }
    return MA_ERROR;
}

MA_API ma_result ma_decoder_uninit(ma_decoder *decoder)
{
    (void)decoder;
    return MA_SUCCESS;
}

#endif /* CHRYSALIS_MINIAUDIO_STUB_H */
