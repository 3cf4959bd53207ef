// Command agent is the guest's PID 1 payload (u-root uinit).
package main

func main() {}
