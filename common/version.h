/* SPDX-License-Identifier: MIT */
/*
 * version: the one version string of espstmd and the espstm tool (`espstmd --version`,
 * `espstm version`, the control socket's "version" answer, the HTTP User-Agent).
 */
#ifndef ESPSTM_VERSION_H
#define ESPSTM_VERSION_H

#define ESPSTM_VERSION "0.2.0"

#endif
