// SPDX-License-Identifier: GPL-2.0
/*
 * espstm_gpiosim: a simulated GPIO chip for tests/e2e (scenario "gpio"), because Debian's
 * 6.1 kernel, the one the e2e VM boots, has neither gpio-sim nor gpio-mockup
 * (CONFIG_GPIO_SIM and CONFIG_GPIO_MOCKUP are not set). It registers one gpio_chip,
 * label "espstm-sim", 32 lines, line 17 named "STM_NRST" and line 27 "STM_BOOT0", served to
 * user space by the kernel's own GPIO character device (/dev/gpiochipN, as libgpiod uses
 * it). Every line has a pull-up: an input (or an open-drain output released, which
 * gpiolib emulates by switching the line to input, as set_config refuses open drain) reads
 * 1. /sys/kernel/espstm_gpiosim/ shows what a pin would see:
 *   levels  32 characters, line 0 first: the electrical level, '0' or '1'
 *   driven  32 characters: 'o' the line is an output (driven), 'i' an input (floating:
 *           the pull-up sets its level; an open-drain line released)
 *   log     every level change since load (up to 256): "NS LINE LEVEL" lines, NS =
 *           CLOCK_MONOTONIC nanoseconds (ktime_get_ns), as Python's time.monotonic_ns()
 * Built out of tree against the VM kernel's headers by tests/e2e/gpiosim/build.
 */
#include <linux/gpio/driver.h>
#include <linux/kobject.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/spinlock.h>
#include <linux/sysfs.h>

#define NLINES 32
#define NLOG   256

static const char *const line_names[NLINES] = {[17] = "STM_NRST", [27] = "STM_BOOT0"};

static DEFINE_SPINLOCK(lock);
static unsigned long is_out;  /* bit n: line n is an output */
static unsigned long out_val; /* bit n: value driven when an output */
static unsigned long level;   /* bit n: electrical level seen at the pin */
static struct {
	u64 ns;
	u8 line, val;
} evlog[NLOG];
static unsigned int nlog;

/* recompute the level of line n (pull-up when not driven); log a change. Lock held. */
static void update(unsigned int n)
{
	int v = test_bit(n, &is_out) ? test_bit(n, &out_val) : 1;

	if (v == test_bit(n, &level))
		return;
	assign_bit(n, &level, v);
	if (nlog < NLOG) {
		evlog[nlog].ns = ktime_get_ns();
		evlog[nlog].line = n;
		evlog[nlog].val = v;
		nlog++;
	}
}

static int sim_get_direction(struct gpio_chip *gc, unsigned int n)
{
	return test_bit(n, &is_out) ? GPIO_LINE_DIRECTION_OUT : GPIO_LINE_DIRECTION_IN;
}

static int sim_direction_input(struct gpio_chip *gc, unsigned int n)
{
	unsigned long f;

	spin_lock_irqsave(&lock, f);
	clear_bit(n, &is_out);
	update(n);
	spin_unlock_irqrestore(&lock, f);
	return 0;
}

static int sim_direction_output(struct gpio_chip *gc, unsigned int n, int v)
{
	unsigned long f;

	spin_lock_irqsave(&lock, f);
	assign_bit(n, &out_val, v);
	set_bit(n, &is_out);
	update(n);
	spin_unlock_irqrestore(&lock, f);
	return 0;
}

static int sim_get(struct gpio_chip *gc, unsigned int n)
{
	return test_bit(n, &level);
}

static void sim_set(struct gpio_chip *gc, unsigned int n, int v)
{
	unsigned long f;

	spin_lock_irqsave(&lock, f);
	assign_bit(n, &out_val, v);
	update(n);
	spin_unlock_irqrestore(&lock, f);
}

static struct gpio_chip chip = {
    .label = "espstm-sim",
    .owner = THIS_MODULE,
    .base = -1,
    .ngpio = NLINES,
    .names = line_names,
    .can_sleep = false,
    .get_direction = sim_get_direction,
    .direction_input = sim_direction_input,
    .direction_output = sim_direction_output,
    .get = sim_get,
    .set = sim_set,
    /* no .set_config: gpiolib emulates open drain (input = released, pulled up) */
};

static ssize_t levels_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	unsigned long f;
	unsigned int n;

	spin_lock_irqsave(&lock, f);
	for (n = 0; n < NLINES; n++)
		buf[n] = test_bit(n, &level) ? '1' : '0';
	spin_unlock_irqrestore(&lock, f);
	buf[NLINES] = '\n';
	return NLINES + 1;
}

static ssize_t driven_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	unsigned long f;
	unsigned int n;

	spin_lock_irqsave(&lock, f);
	for (n = 0; n < NLINES; n++)
		buf[n] = test_bit(n, &is_out) ? 'o' : 'i';
	spin_unlock_irqrestore(&lock, f);
	buf[NLINES] = '\n';
	return NLINES + 1;
}

static ssize_t log_show(struct kobject *k, struct kobj_attribute *a, char *buf)
{
	unsigned long f;
	unsigned int i;
	ssize_t len = 0;

	spin_lock_irqsave(&lock, f);
	for (i = 0; i < nlog && len < PAGE_SIZE - 40; i++)
		len += scnprintf(buf + len, PAGE_SIZE - len, "%llu %u %u\n", evlog[i].ns,
		                 evlog[i].line, evlog[i].val);
	spin_unlock_irqrestore(&lock, f);
	return len;
}

static struct kobj_attribute levels_attr = __ATTR_RO(levels);
static struct kobj_attribute driven_attr = __ATTR_RO(driven);
static struct kobj_attribute log_attr = __ATTR_RO(log);
static struct attribute *attrs[] = {&levels_attr.attr, &driven_attr.attr, &log_attr.attr, NULL};
static const struct attribute_group group = {.attrs = attrs};
static struct kobject *kobj;

static int __init sim_init(void)
{
	int rc;

	level = ~0UL; /* all inputs, pulled up */
	kobj = kobject_create_and_add("espstm_gpiosim", kernel_kobj);
	if (!kobj)
		return -ENOMEM;
	rc = sysfs_create_group(kobj, &group);
	if (!rc)
		rc = gpiochip_add_data(&chip, NULL);
	if (rc)
		kobject_put(kobj);
	return rc;
}

static void __exit sim_exit(void)
{
	gpiochip_remove(&chip);
	kobject_put(kobj);
}

module_init(sim_init);
module_exit(sim_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("espstm e2e: simulated GPIO chip with pin levels and a change log");
