/*
 * A fake NVIDIA driver library (libnvidia-ml.so.1) for the test suite.
 *
 * The real pynvml (nvidia-ml-py) loads it through LD_LIBRARY_PATH in a subprocess and calls it
 * exactly as it calls the real driver: same symbols, same argument lists, same struct layouts
 * (nvmlMemory_t v1 and v2, nvmlProcessInfo_v2/v3, nvmlTemperature_v1). Its behaviour is scripted by
 * FAKE_NVML_* environment variables, read at the moment of each call; the full contract is in the
 * docstring of tests/support/fake_nvml.py, which builds this file.
 *
 * A symbol the driver lacks (what pynvml reports as NVMLError_FunctionNotFound) must be truly
 * absent, so every exported function sits inside `#ifndef OMIT_<symbol>` and a variant library is
 * built with -DOMIT_<symbol>.
 *
 * Build: gcc -shared -fPIC -O1 -Wl,-soname,libnvidia-ml.so.1 -o libnvidia-ml.so.1 fake_nvml.c
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_NO_PERMISSION = 4,
    NVML_ERROR_NOT_FOUND = 6,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_GPU_IS_LOST = 15,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
};

#define MAX_GPUS 64
#define FIELD 256
#define NOT_AVAILABLE_UINT 0xFFFFFFFFu
#define NOT_AVAILABLE_ULL 0xFFFFFFFFFFFFFFFFull
#define MIB 1048576ull

struct nvmlDevice_st {
    unsigned index;
};
typedef struct nvmlDevice_st *nvmlDevice_t;

/* Struct layouts as pynvml declares them (c_nvmlMemory_t, c_nvmlMemory_v2_t, ...). */
typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;
typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;
#define NVML_MEMORY_V2 0x02000028u /* sizeof(nvmlMemory_v2_t) | 2 << 24 */
typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t; /* the v2 and v3 layouts are identical */
typedef struct {
    unsigned int version;
    unsigned int sensorType;
    int temperature;
} nvmlTemperature_v1_t;
#define NVML_TEMPERATURE_V1 0x0100000Cu

static struct nvmlDevice_st devices[MAX_GPUS];
static int init_count = 0;

/* ---------------------------------------------------------------- scripted behaviour ---- */

/* The behaviour table: each FAKE_NVML_* variable and the value used when it is unset.
 * Per-GPU variables take a comma list whose last item repeats for the remaining GPUs. */
static const struct {
    const char *var, *fallback;
} table[] = {
    {"FAKE_NVML_INIT_ERROR", "0"},
    {"FAKE_NVML_DRIVER", "535.104.05"},
    {"FAKE_NVML_CUDA", "12020"},
    {"FAKE_NVML_NVML_VERSION", ""}, /* empty: "<cuda major>.<driver>", like real NVML */
    {"FAKE_NVML_GPU_COUNT", "1"},
    {"FAKE_NVML_GPU_NAMES", "NVIDIA H100 80GB HBM3"},
    {"FAKE_NVML_UUIDS", ""}, /* empty: GPU-fa4e0000-0000-4000-8000-<index as 12 digits> */
    {"FAKE_NVML_CC", "9.0"},
    {"FAKE_NVML_MEM_TOTAL_MIB", "81559"},
    {"FAKE_NVML_MEM_USED_MIB", "0"},
    {"FAKE_NVML_MEM_RESERVED_MIB", "0"},
    {"FAKE_NVML_TEMP_C", "34"},
    {"FAKE_NVML_POWER_W", "71.5"},
    {"FAKE_NVML_POWER_LIMIT_W", "700"},
    {"FAKE_NVML_PCIE_GEN", "5,5"},     /* current,max for every GPU */
    {"FAKE_NVML_PCIE_WIDTH", "16,16"}, /* current,max for every GPU */
    {"FAKE_NVML_MIG", "0,0"},          /* current,pending for every GPU */
    {"FAKE_NVML_ECC", "1,1"},          /* current,pending for every GPU */
    {"FAKE_NVML_ECC_UNCORRECTED", "0"},
    {"FAKE_NVML_PERSISTENCE", "1"},
    {"FAKE_NVML_PROCS", ""},
    {"FAKE_NVML_NOT_SUPPORTED", ""},
    {"FAKE_NVML_NO_PERMISSION", ""},
    {"FAKE_NVML_LOST_GPUS", ""},
    {"FAKE_NVML_ERRORS", ""}, /* <symbol>[@<gpu>]:<code>,... */
    {"FAKE_NVML_CALL_LOG", ""},
    /* Health fields (issue 11). */
    {"FAKE_NVML_PCIE_GPU_MAX_GEN", ""},        /* empty: the max of FAKE_NVML_PCIE_GEN */
    {"FAKE_NVML_UTIL_GPU", "0"},               /* per GPU, utilization.gpu (%) */
    {"FAKE_NVML_CLOCK_REASONS", "0x1"},        /* per GPU, clock event reason mask (idle) */
    {"FAKE_NVML_SM_CLOCK", "345,1980"},        /* current,max SM clock (MHz, every GPU) */
    {"FAKE_NVML_TEMP_SLOWDOWN_C", "87"},       /* per GPU, slowdown threshold (°C) */
    {"FAKE_NVML_POWER_DEFAULT_LIMIT_W", ""},   /* per GPU; empty: FAKE_NVML_POWER_LIMIT_W */
    {"FAKE_NVML_ECC_UNCORRECTED_AGGREGATE", ""}, /* per GPU; empty: the volatile count */
    {"FAKE_NVML_RETIRED_PENDING", "0"},        /* per GPU, retired pages pending (0/1) */
    {"FAKE_NVML_REMAPPED_ROWS", "0,0,0,0"},    /* corr,unc,pending,failure (every GPU) */
    {"FAKE_NVML_FABRIC", "0,0"},               /* state,status of fabric info (every GPU) */
    {"FAKE_NVML_NVLINKS", "0,0"},              /* links,NVSwitches per GPU (issue 25) */
    {"FAKE_NVML_NVLINKS_DOWN", "0"},           /* per GPU, how many of its last links are down */
    {"FAKE_NVML_PCI_BUS", ""},                 /* per GPU, PCI bus (hex); empty: 0x10 x (index+1) */
};

static const char *setting(const char *var) {
    const char *value = getenv(var);
    if (value != NULL) return value;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].var, var) == 0) return table[i].fallback;
    return "";
}

/* Item `i` of a list separated by `sep`; the last item repeats. Empty list -> "". */
static const char *item(const char *list, char sep, unsigned i, char *out, size_t size) {
    const char *start = list;
    for (unsigned k = 0; k < i; k++) {
        const char *next = strchr(start, sep);
        if (next == NULL) break;
        start = next + 1;
    }
    size_t len = strcspn(start, (char[]){sep, '\0'});
    if (len >= size) len = size - 1;
    memcpy(out, start, len);
    out[len] = '\0';
    return out;
}

static const char *gpu_item(const char *var, unsigned gpu, char *out) {
    return item(setting(var), ',', gpu, out, FIELD);
}

static double gpu_number(const char *var, unsigned gpu) {
    char buf[FIELD];
    return strtod(gpu_item(var, gpu, buf), NULL);
}

static unsigned pair_number(const char *var, unsigned which) {
    char buf[FIELD];
    return (unsigned)strtoul(item(setting(var), ',', which, buf, sizeof buf), NULL, 10);
}

static int in_list(const char *list, long wanted) {
    char buf[FIELD];
    for (const char *p = list; *p != '\0';) {
        item(p, ',', 0, buf, sizeof buf);
        if (buf[0] != '\0' && strtol(buf, NULL, 10) == wanted) return 1;
        const char *next = strchr(p, ',');
        if (next == NULL) break;
        p = next + 1;
    }
    return 0;
}

/* A listed name matches the symbol itself and its versioned forms (_v2, _v3, V). */
static int name_matches(const char *listed, const char *symbol) {
    size_t n = strlen(listed);
    if (n == 0 || strncmp(listed, symbol, n) != 0) return 0;
    const char *rest = symbol + n;
    return *rest == '\0' || strcmp(rest, "_v2") == 0 || strcmp(rest, "_v3") == 0 ||
           strcmp(rest, "V") == 0;
}

static int named_in(const char *list, const char *symbol) {
    char buf[FIELD];
    for (const char *p = list; *p != '\0';) {
        if (name_matches(item(p, ',', 0, buf, sizeof buf), symbol)) return 1;
        const char *next = strchr(p, ',');
        if (next == NULL) break;
        p = next + 1;
    }
    return 0;
}

/* FAKE_NVML_ERRORS entries: "<symbol>:<code>" for every GPU, "<symbol>@<gpu>:<code>" for one. */
static nvmlReturn_t scripted_error(const char *symbol, long gpu) {
    char entry[FIELD];
    for (const char *p = setting("FAKE_NVML_ERRORS"); *p != '\0';) {
        item(p, ',', 0, entry, sizeof entry);
        char *colon = strrchr(entry, ':');
        if (colon != NULL) {
            *colon = '\0';
            char *at = strchr(entry, '@');
            long only = -1;
            if (at != NULL) {
                *at = '\0';
                only = strtol(at + 1, NULL, 10);
            }
            if (name_matches(entry, symbol) && (only < 0 || only == gpu))
                return (nvmlReturn_t)strtol(colon + 1, NULL, 10);
        }
        const char *next = strchr(p, ',');
        if (next == NULL) break;
        p = next + 1;
    }
    return NVML_SUCCESS;
}

static void log_call(const char *symbol) {
    const char *path = setting("FAKE_NVML_CALL_LOG");
    if (path[0] == '\0') return;
    FILE *f = fopen(path, "a");
    if (f == NULL) return;
    fprintf(f, "%s\n", symbol);
    fclose(f);
}

static unsigned gpu_count(void) {
    long n = strtol(setting("FAKE_NVML_GPU_COUNT"), NULL, 10);
    if (n < 0) n = 0;
    if (n > MAX_GPUS) n = MAX_GPUS;
    return (unsigned)n;
}

/* Every call passes here first: initialised? scripted error? lost GPU? unsupported? */
static nvmlReturn_t gate(const char *symbol, nvmlDevice_t device) {
    log_call(symbol);
    if (init_count == 0) return NVML_ERROR_UNINITIALIZED;
    long gpu = -1;
    if (device != NULL) {
        if (device < devices || device >= devices + gpu_count()) return NVML_ERROR_INVALID_ARGUMENT;
        gpu = (long)device->index;
    }
    nvmlReturn_t scripted = scripted_error(symbol, gpu);
    if (scripted != NVML_SUCCESS) return scripted;
    if (gpu >= 0 && in_list(setting("FAKE_NVML_LOST_GPUS"), gpu)) return NVML_ERROR_GPU_IS_LOST;
    if (named_in(setting("FAKE_NVML_NOT_SUPPORTED"), symbol)) return NVML_ERROR_NOT_SUPPORTED;
    if (named_in(setting("FAKE_NVML_NO_PERMISSION"), symbol)) return NVML_ERROR_NO_PERMISSION;
    return NVML_SUCCESS;
}

#define GATE(device)                                         \
    do {                                                     \
        nvmlReturn_t gate_result = gate(__func__, (device)); \
        if (gate_result != NVML_SUCCESS) return gate_result; \
    } while (0)

static nvmlReturn_t copy_string(const char *value, char *out, unsigned length) {
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (strlen(value) + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
    strcpy(out, value);
    return NVML_SUCCESS;
}

static nvmlReturn_t out_uint(unsigned *out, unsigned value) {
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *out = value;
    return NVML_SUCCESS;
}

/* ------------------------------------------------------------------- init / shutdown ---- */

static nvmlReturn_t do_init(const char *symbol) {
    log_call(symbol);
    nvmlReturn_t code = (nvmlReturn_t)strtol(setting("FAKE_NVML_INIT_ERROR"), NULL, 10);
    if (code != NVML_SUCCESS) return code;
    for (unsigned i = 0; i < MAX_GPUS; i++) devices[i].index = i;
    init_count++;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlInitWithFlags
EXPORT nvmlReturn_t nvmlInitWithFlags(unsigned int flags) {
    (void)flags;
    return do_init(__func__);
}
#endif

#ifndef OMIT_nvmlInit_v2
EXPORT nvmlReturn_t nvmlInit_v2(void) { return do_init(__func__); }
#endif

#ifndef OMIT_nvmlInit
EXPORT nvmlReturn_t nvmlInit(void) { return do_init(__func__); }
#endif

#ifndef OMIT_nvmlShutdown
EXPORT nvmlReturn_t nvmlShutdown(void) {
    GATE(NULL);
    init_count--;
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlErrorString
EXPORT const char *nvmlErrorString(nvmlReturn_t result) {
    switch (result) {
        case 0: return "Success";
        case 1: return "Uninitialized";
        case 2: return "Invalid Argument";
        case 3: return "Not Supported";
        case 4: return "Insufficient Permissions";
        case 6: return "Not Found";
        case 7: return "Insufficient Size";
        case 9: return "Driver Not Loaded";
        case 12: return "NVML Shared Library Not Found";
        case 13: return "Function Not Found";
        case 15: return "GPU is lost";
        case 18: return "RM has detected an NVML/RM version mismatch.";
        case 25: return "Argument version mismatch";
        default: return "Unknown Error";
    }
}
#endif

/* -------------------------------------------------------------------------- system ---- */

#ifndef OMIT_nvmlSystemGetDriverVersion
EXPORT nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length) {
    GATE(NULL);
    return copy_string(setting("FAKE_NVML_DRIVER"), version, length);
}
#endif

static nvmlReturn_t cuda_version(const char *symbol, int *out) {
    nvmlReturn_t gate_result = gate(symbol, NULL);
    if (gate_result != NVML_SUCCESS) return gate_result;
    if (out == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *out = (int)strtol(setting("FAKE_NVML_CUDA"), NULL, 10);
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlSystemGetCudaDriverVersion
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion(int *cudaDriverVersion) {
    return cuda_version(__func__, cudaDriverVersion);
}
#endif

#ifndef OMIT_nvmlSystemGetCudaDriverVersion_v2
EXPORT nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *cudaDriverVersion) {
    return cuda_version(__func__, cudaDriverVersion);
}
#endif

#ifndef OMIT_nvmlSystemGetNVMLVersion
EXPORT nvmlReturn_t nvmlSystemGetNVMLVersion(char *version, unsigned int length) {
    GATE(NULL);
    const char *explicit_version = setting("FAKE_NVML_NVML_VERSION");
    if (explicit_version[0] != '\0') return copy_string(explicit_version, version, length);
    char buf[FIELD];
    long cuda = strtol(setting("FAKE_NVML_CUDA"), NULL, 10);
    snprintf(buf, sizeof buf, "%ld.%s", cuda / 1000, setting("FAKE_NVML_DRIVER"));
    return copy_string(buf, version, length);
}
#endif

/* A scripted process: "<gpu>:<pid>:<name>:<usedMiB>" (usedMiB "-" means not available). */
struct proc {
    long gpu;
    unsigned pid;
    char name[FIELD];
    unsigned long long used_bytes;
};

static int parse_proc(unsigned i, struct proc *out) {
    const char *list = setting("FAKE_NVML_PROCS");
    const char *start = list;
    for (unsigned k = 0; k < i; k++) {
        start = strchr(start, ';');
        if (start == NULL) return 0;
        start++;
    }
    char entry[FIELD];
    size_t len = strcspn(start, ";");
    if (len == 0) return 0;
    if (len >= sizeof entry) len = sizeof entry - 1;
    memcpy(entry, start, len);
    entry[len] = '\0';
    char *first = strchr(entry, ':');
    char *second = first ? strchr(first + 1, ':') : NULL;
    char *last = strrchr(entry, ':');
    if (first == NULL || second == NULL || last == second) return 0;
    *first = *second = *last = '\0';
    out->gpu = strtol(entry, NULL, 10);
    out->pid = (unsigned)strtoul(first + 1, NULL, 10);
    snprintf(out->name, sizeof out->name, "%s", second + 1);
    out->used_bytes = strcmp(last + 1, "-") == 0 ? NOT_AVAILABLE_ULL
                                                  : strtoull(last + 1, NULL, 10) * MIB;
    return 1;
}

#ifndef OMIT_nvmlSystemGetProcessName
EXPORT nvmlReturn_t nvmlSystemGetProcessName(unsigned int pid, char *name, unsigned int length) {
    GATE(NULL);
    struct proc p;
    for (unsigned i = 0; parse_proc(i, &p); i++)
        if (p.pid == pid) return copy_string(p.name, name, length);
    return NVML_ERROR_NOT_FOUND;
}
#endif

/* -------------------------------------------------------------------------- device ---- */

#ifndef OMIT_nvmlDeviceGetCount_v2
EXPORT nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *deviceCount) {
    GATE(NULL);
    return out_uint(deviceCount, gpu_count());
}
#endif

#ifndef OMIT_nvmlDeviceGetCount
EXPORT nvmlReturn_t nvmlDeviceGetCount(unsigned int *deviceCount) {
    GATE(NULL);
    return out_uint(deviceCount, gpu_count());
}
#endif

static nvmlReturn_t handle_by_index(const char *symbol, unsigned index, nvmlDevice_t *device) {
    log_call(symbol);
    if (init_count == 0) return NVML_ERROR_UNINITIALIZED;
    if (device == NULL || index >= gpu_count()) return NVML_ERROR_INVALID_ARGUMENT;
    nvmlReturn_t scripted = scripted_error(symbol, (long)index);
    if (scripted != NVML_SUCCESS) return scripted;
    *device = &devices[index];
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetHandleByIndex_v2
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device) {
    return handle_by_index(__func__, index, device);
}
#endif

#ifndef OMIT_nvmlDeviceGetHandleByIndex
EXPORT nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t *device) {
    return handle_by_index(__func__, index, device);
}
#endif

#ifndef OMIT_nvmlDeviceGetName
EXPORT nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length) {
    GATE(device);
    char buf[FIELD];
    return copy_string(gpu_item("FAKE_NVML_GPU_NAMES", device->index, buf), name, length);
}
#endif

#ifndef OMIT_nvmlDeviceGetUUID
EXPORT nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length) {
    GATE(device);
    char buf[FIELD];
    if (setting("FAKE_NVML_UUIDS")[0] == '\0')
        snprintf(buf, sizeof buf, "GPU-fa4e0000-0000-4000-8000-%012u", device->index);
    else
        gpu_item("FAKE_NVML_UUIDS", device->index, buf);
    return copy_string(buf, uuid, length);
}
#endif

#ifndef OMIT_nvmlDeviceGetCudaComputeCapability
EXPORT nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int *major,
                                                       int *minor) {
    GATE(device);
    if (major == NULL || minor == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    char buf[FIELD];
    char *dot = NULL;
    *major = (int)strtol(gpu_item("FAKE_NVML_CC", device->index, buf), &dot, 10);
    *minor = (dot != NULL && *dot == '.') ? (int)strtol(dot + 1, NULL, 10) : 0;
    return NVML_SUCCESS;
}
#endif

static void memory_of(unsigned gpu, unsigned long long *total, unsigned long long *reserved,
                      unsigned long long *used) {
    *total = (unsigned long long)gpu_number("FAKE_NVML_MEM_TOTAL_MIB", gpu) * MIB;
    *reserved = (unsigned long long)gpu_number("FAKE_NVML_MEM_RESERVED_MIB", gpu) * MIB;
    *used = (unsigned long long)gpu_number("FAKE_NVML_MEM_USED_MIB", gpu) * MIB;
}

#ifndef OMIT_nvmlDeviceGetMemoryInfo
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t *memory) {
    GATE(device);
    if (memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned long long total, reserved, used;
    memory_of(device->index, &total, &reserved, &used);
    memory->total = total;
    memory->used = used + reserved; /* v1 counts reserved memory as used */
    memory->free = total - memory->used;
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlDeviceGetMemoryInfo_v2
EXPORT nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t *memory) {
    GATE(device);
    if (memory == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (memory->version != NVML_MEMORY_V2) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    memory_of(device->index, &memory->total, &memory->reserved, &memory->used);
    memory->free = memory->total - memory->reserved - memory->used;
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlDeviceGetTemperature
EXPORT nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, unsigned int sensorType,
                                             unsigned int *temp) {
    GATE(device);
    if (sensorType != 0) return NVML_ERROR_INVALID_ARGUMENT; /* only NVML_TEMPERATURE_GPU */
    return out_uint(temp, (unsigned)gpu_number("FAKE_NVML_TEMP_C", device->index));
}
#endif

#ifndef OMIT_nvmlDeviceGetTemperatureV
EXPORT nvmlReturn_t nvmlDeviceGetTemperatureV(nvmlDevice_t device, nvmlTemperature_v1_t *temp) {
    GATE(device);
    if (temp == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (temp->version != NVML_TEMPERATURE_V1) return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (temp->sensorType != 0) return NVML_ERROR_INVALID_ARGUMENT;
    temp->temperature = (int)gpu_number("FAKE_NVML_TEMP_C", device->index);
    return NVML_SUCCESS;
}
#endif

static unsigned milliwatts(const char *var, unsigned gpu) {
    return (unsigned)(gpu_number(var, gpu) * 1000.0 + 0.5);
}

#ifndef OMIT_nvmlDeviceGetPowerUsage
EXPORT nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int *power) {
    GATE(device);
    return out_uint(power, milliwatts("FAKE_NVML_POWER_W", device->index));
}
#endif

#ifndef OMIT_nvmlDeviceGetEnforcedPowerLimit
EXPORT nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int *limit) {
    GATE(device);
    return out_uint(limit, milliwatts("FAKE_NVML_POWER_LIMIT_W", device->index));
}
#endif

#ifndef OMIT_nvmlDeviceGetPowerManagementLimit
EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int *limit) {
    GATE(device);
    return out_uint(limit, milliwatts("FAKE_NVML_POWER_LIMIT_W", device->index));
}
#endif

#ifndef OMIT_nvmlDeviceGetCurrPcieLinkGeneration
EXPORT nvmlReturn_t nvmlDeviceGetCurrPcieLinkGeneration(nvmlDevice_t device, unsigned int *gen) {
    GATE(device);
    return out_uint(gen, pair_number("FAKE_NVML_PCIE_GEN", 0));
}
#endif

#ifndef OMIT_nvmlDeviceGetMaxPcieLinkGeneration
EXPORT nvmlReturn_t nvmlDeviceGetMaxPcieLinkGeneration(nvmlDevice_t device, unsigned int *gen) {
    GATE(device);
    return out_uint(gen, pair_number("FAKE_NVML_PCIE_GEN", 1));
}
#endif

#ifndef OMIT_nvmlDeviceGetCurrPcieLinkWidth
EXPORT nvmlReturn_t nvmlDeviceGetCurrPcieLinkWidth(nvmlDevice_t device, unsigned int *width) {
    GATE(device);
    return out_uint(width, pair_number("FAKE_NVML_PCIE_WIDTH", 0));
}
#endif

#ifndef OMIT_nvmlDeviceGetMaxPcieLinkWidth
EXPORT nvmlReturn_t nvmlDeviceGetMaxPcieLinkWidth(nvmlDevice_t device, unsigned int *width) {
    GATE(device);
    return out_uint(width, pair_number("FAKE_NVML_PCIE_WIDTH", 1));
}
#endif

#ifndef OMIT_nvmlDeviceGetMigMode
EXPORT nvmlReturn_t nvmlDeviceGetMigMode(nvmlDevice_t device, unsigned int *currentMode,
                                         unsigned int *pendingMode) {
    GATE(device);
    if (currentMode == NULL || pendingMode == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *currentMode = pair_number("FAKE_NVML_MIG", 0);
    *pendingMode = pair_number("FAKE_NVML_MIG", 1);
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlDeviceGetEccMode
EXPORT nvmlReturn_t nvmlDeviceGetEccMode(nvmlDevice_t device, unsigned int *current,
                                         unsigned int *pending) {
    GATE(device);
    if (current == NULL || pending == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *current = pair_number("FAKE_NVML_ECC", 0);
    *pending = pair_number("FAKE_NVML_ECC", 1);
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlDeviceGetTotalEccErrors
EXPORT nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, unsigned int errorType,
                                                unsigned int counterType,
                                                unsigned long long *eccCounts) {
    GATE(device);
    if (eccCounts == NULL || errorType > 1 || counterType > 1) return NVML_ERROR_INVALID_ARGUMENT;
    if (pair_number("FAKE_NVML_ECC", 0) == 0) return NVML_ERROR_NOT_SUPPORTED; /* ECC off */
    /* errorType 1 = uncorrected; corrected errors are always 0 here. */
    const char *count_var = "FAKE_NVML_ECC_UNCORRECTED";
    char buf[FIELD];
    if (counterType == 1 && gpu_item("FAKE_NVML_ECC_UNCORRECTED_AGGREGATE", device->index, buf)[0])
        count_var = "FAKE_NVML_ECC_UNCORRECTED_AGGREGATE";
    *eccCounts =
        errorType == 1 ? (unsigned long long)gpu_number(count_var, device->index) : 0ull;
    return NVML_SUCCESS;
}
#endif

#ifndef OMIT_nvmlDeviceGetPersistenceMode
EXPORT nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t device, unsigned int *mode) {
    GATE(device);
    return out_uint(mode, (unsigned)gpu_number("FAKE_NVML_PERSISTENCE", device->index));
}
#endif

/* NVML's two-call protocol: too small a buffer -> INSUFFICIENT_SIZE with the needed count. */
static nvmlReturn_t running_processes(nvmlDevice_t device, unsigned int *count,
                                      nvmlProcessInfo_t *infos) {
    if (count == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    struct proc p;
    unsigned needed = 0;
    for (unsigned i = 0; parse_proc(i, &p); i++)
        if (p.gpu == (long)device->index) needed++;
    if (needed == 0) {
        *count = 0;
        return NVML_SUCCESS;
    }
    if (infos == NULL || *count < needed) {
        *count = needed;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    unsigned k = 0;
    int mig_on = pair_number("FAKE_NVML_MIG", 0) != 0;
    for (unsigned i = 0; parse_proc(i, &p); i++) {
        if (p.gpu != (long)device->index) continue;
        infos[k].pid = p.pid;
        infos[k].usedGpuMemory = p.used_bytes;
        infos[k].gpuInstanceId = mig_on ? 0u : NOT_AVAILABLE_UINT;
        infos[k].computeInstanceId = mig_on ? 0u : NOT_AVAILABLE_UINT;
        k++;
    }
    *count = k;
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetComputeRunningProcesses_v3
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device,
                                                            unsigned int *infoCount,
                                                            nvmlProcessInfo_t *infos) {
    GATE(device);
    return running_processes(device, infoCount, infos);
}
#endif

#ifndef OMIT_nvmlDeviceGetComputeRunningProcesses_v2
EXPORT nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device,
                                                            unsigned int *infoCount,
                                                            nvmlProcessInfo_t *infos) {
    GATE(device);
    return running_processes(device, infoCount, infos);
}
#endif

/* ------------------------------------------------------------------ health fields ---- */

#ifndef OMIT_nvmlDeviceGetGpuMaxPcieLinkGeneration
EXPORT nvmlReturn_t nvmlDeviceGetGpuMaxPcieLinkGeneration(nvmlDevice_t device, unsigned int *gen) {
    GATE(device);
    const char *own = setting("FAKE_NVML_PCIE_GPU_MAX_GEN");
    return out_uint(gen, own[0] ? (unsigned)strtoul(own, NULL, 10)
                                : pair_number("FAKE_NVML_PCIE_GEN", 1));
}
#endif

typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;

#ifndef OMIT_nvmlDeviceGetUtilizationRates
EXPORT nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t *u) {
    GATE(device);
    if (u == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    u->gpu = (unsigned)gpu_number("FAKE_NVML_UTIL_GPU", device->index);
    u->memory = 0;
    return NVML_SUCCESS;
}
#endif

static nvmlReturn_t clock_reasons(nvmlDevice_t device, unsigned long long *reasons) {
    char buf[FIELD];
    if (reasons == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    *reasons = strtoull(gpu_item("FAKE_NVML_CLOCK_REASONS", device->index, buf), NULL, 0);
    return NVML_SUCCESS;
}

#ifndef OMIT_nvmlDeviceGetCurrentClocksEventReasons
EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device,
                                                           unsigned long long *reasons) {
    GATE(device);
    return clock_reasons(device, reasons);
}
#endif

#ifndef OMIT_nvmlDeviceGetCurrentClocksThrottleReasons
EXPORT nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device,
                                                              unsigned long long *reasons) {
    GATE(device);
    return clock_reasons(device, reasons);
}
#endif

#ifndef OMIT_nvmlDeviceGetClockInfo
EXPORT nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, unsigned int type,
                                           unsigned int *clock) {
    GATE(device);
    return out_uint(clock, type == 1 ? pair_number("FAKE_NVML_SM_CLOCK", 0) : 1593);
}
#endif

#ifndef OMIT_nvmlDeviceGetMaxClockInfo
EXPORT nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t device, unsigned int type,
                                              unsigned int *clock) {
    GATE(device);
    return out_uint(clock, type == 1 ? pair_number("FAKE_NVML_SM_CLOCK", 1) : 2619);
}
#endif

#ifndef OMIT_nvmlDeviceGetTemperatureThreshold
EXPORT nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t device, unsigned int which,
                                                      unsigned int *temp) {
    GATE(device);
    if (which != 1) return NVML_ERROR_NOT_SUPPORTED; /* only the slowdown threshold is scripted */
    return out_uint(temp, (unsigned)gpu_number("FAKE_NVML_TEMP_SLOWDOWN_C", device->index));
}
#endif

#ifndef OMIT_nvmlDeviceGetPowerManagementDefaultLimit
EXPORT nvmlReturn_t nvmlDeviceGetPowerManagementDefaultLimit(nvmlDevice_t device,
                                                             unsigned int *limit) {
    GATE(device);
    char buf[FIELD];
    const char *var = gpu_item("FAKE_NVML_POWER_DEFAULT_LIMIT_W", device->index, buf)[0]
                          ? "FAKE_NVML_POWER_DEFAULT_LIMIT_W"
                          : "FAKE_NVML_POWER_LIMIT_W";
    return out_uint(limit, milliwatts(var, device->index));
}
#endif

#ifndef OMIT_nvmlDeviceGetRetiredPagesPendingStatus
EXPORT nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t device,
                                                           unsigned int *pending) {
    GATE(device);
    return out_uint(pending, (unsigned)gpu_number("FAKE_NVML_RETIRED_PENDING", device->index));
}
#endif

#ifndef OMIT_nvmlDeviceGetRemappedRows
EXPORT nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *corrRows,
                                              unsigned int *uncRows, unsigned int *isPending,
                                              unsigned int *failureOccurred) {
    GATE(device);
    if (corrRows == NULL || uncRows == NULL || isPending == NULL || failureOccurred == NULL)
        return NVML_ERROR_INVALID_ARGUMENT;
    *corrRows = pair_number("FAKE_NVML_REMAPPED_ROWS", 0);
    *uncRows = pair_number("FAKE_NVML_REMAPPED_ROWS", 1);
    *isPending = pair_number("FAKE_NVML_REMAPPED_ROWS", 2);
    *failureOccurred = pair_number("FAKE_NVML_REMAPPED_ROWS", 3);
    return NVML_SUCCESS;
}
#endif

/* nvmlGpuFabricInfo_t as pynvml declares it (c_nvmlGpuFabricInfo_t): state read as a uint. */
typedef struct {
    unsigned char clusterUuid[16];
    unsigned int status;
    unsigned int cliqueId;
    unsigned int state;
} nvmlGpuFabricInfo_t;

#ifndef OMIT_nvmlDeviceGetGpuFabricInfo
EXPORT nvmlReturn_t nvmlDeviceGetGpuFabricInfo(nvmlDevice_t device, nvmlGpuFabricInfo_t *info) {
    GATE(device);
    if (info == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    memset(info, 0, sizeof *info);
    info->state = pair_number("FAKE_NVML_FABRIC", 0);
    info->status = pair_number("FAKE_NVML_FABRIC", 1);
    return NVML_SUCCESS;
}
#endif

/* NVLinks (issue 25): FAKE_NVML_NVLINKS "<links>,<switches>" for every GPU. No links: NOT_SUPPORTED
 * (a PCIe board); a link past the count: INVALID_ARGUMENT (as NVML answers). With switches, link
 * l goes to NVSwitch (l % switches) on PCI bus 0xC0 + that number; without, to a peer GPU. */
#define NVML_NVLINK_DEVICE_TYPE_GPU 0
#define NVML_NVLINK_DEVICE_TYPE_SWITCH 2

static nvmlReturn_t nvlink_gate(const char *symbol, nvmlDevice_t device, unsigned link) {
    nvmlReturn_t gate_result = gate(symbol, device);
    if (gate_result != NVML_SUCCESS) return gate_result;
    unsigned links = pair_number("FAKE_NVML_NVLINKS", 0);
    if (links == 0) return NVML_ERROR_NOT_SUPPORTED;
    return link < links ? NVML_SUCCESS : NVML_ERROR_INVALID_ARGUMENT;
}

#ifndef OMIT_nvmlDeviceGetNvLinkRemoteDeviceType
EXPORT nvmlReturn_t nvmlDeviceGetNvLinkRemoteDeviceType(nvmlDevice_t device, unsigned int link,
                                                        unsigned int *type) {
    nvmlReturn_t result = nvlink_gate(__func__, device, link);
    if (result != NVML_SUCCESS) return result;
    unsigned switches = pair_number("FAKE_NVML_NVLINKS", 1);
    return out_uint(type, switches ? NVML_NVLINK_DEVICE_TYPE_SWITCH : NVML_NVLINK_DEVICE_TYPE_GPU);
}
#endif

/* nvmlPciInfo_t as pynvml declares it. */
typedef struct {
    char busIdLegacy[16];
    unsigned int domain;
    unsigned int bus;
    unsigned int device;
    unsigned int pciDeviceId;
    unsigned int pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

#ifndef OMIT_nvmlDeviceGetNvLinkRemotePciInfo_v2
EXPORT nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(nvmlDevice_t device, unsigned int link,
                                                        nvmlPciInfo_t *pci) {
    nvmlReturn_t result = nvlink_gate(__func__, device, link);
    if (result != NVML_SUCCESS) return result;
    if (pci == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    unsigned switches = pair_number("FAKE_NVML_NVLINKS", 1);
    memset(pci, 0, sizeof *pci);
    pci->bus = switches ? 0xC0 + link % switches : 0x10 + (device->index + 1) % gpu_count();
    snprintf(pci->busId, sizeof pci->busId, "00000000:%02X:00.0", pci->bus);
    memcpy(pci->busIdLegacy, pci->busId, sizeof pci->busIdLegacy - 1);
    return NVML_SUCCESS;
}
#endif

/* The GPU's own PCI address (issue 23): FAKE_NVML_PCI_BUS per GPU, in hex. */
#ifndef OMIT_nvmlDeviceGetPciInfo_v3
EXPORT nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci) {
    nvmlReturn_t result = gate(__func__, device);
    if (result != NVML_SUCCESS) return result;
    if (pci == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    char buf[FIELD];
    const char *bus = gpu_item("FAKE_NVML_PCI_BUS", device->index, buf);
    memset(pci, 0, sizeof *pci);
    pci->bus = bus[0] ? (unsigned)strtoul(bus, NULL, 16) : 0x10 * (device->index + 1);
    pci->pciDeviceId = 0x233010de;
    snprintf(pci->busId, sizeof pci->busId, "00000000:%02X:00.0", pci->bus);
    memcpy(pci->busIdLegacy, pci->busId, sizeof pci->busIdLegacy - 1);
    return NVML_SUCCESS;
}
#endif

/* NVLink state (issue 23): the last FAKE_NVML_NVLINKS_DOWN links of a GPU are down. */
#ifndef OMIT_nvmlDeviceGetNvLinkState
EXPORT nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link,
                                             unsigned int *isActive) {
    nvmlReturn_t result = nvlink_gate(__func__, device, link);
    if (result != NVML_SUCCESS) return result;
    unsigned links = pair_number("FAKE_NVML_NVLINKS", 0);
    unsigned down = (unsigned)gpu_number("FAKE_NVML_NVLINKS_DOWN", device->index);
    return out_uint(isActive, link + down < links ? 1 : 0);
}
#endif
