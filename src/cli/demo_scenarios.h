/*
 * demo_scenarios.h — `retort demo`'s traffic scenarios (the JSON files in scenarios/demo:
 * PRESET-calib, PRESET-day, PRESET-control) compiled into the binary by scripts/embed.c, so the demo runs
 * from any directory and the scenarios are files one can read, diff and run with `retort
 * simulate` by hand. Looked up by file name ("quick-day.json").
 */
#ifndef RETORT_CLI_DEMO_SCENARIOS_H
#define RETORT_CLI_DEMO_SCENARIOS_H

#include "../serve/web_assets.h" /* the embedded-file record */

extern const serve_web_asset demo_scenarios[]; /* demo_scenarios_n entries, then {0} */
extern const size_t demo_scenarios_n;

#endif
