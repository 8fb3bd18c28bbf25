;; The caller of world `cancels` (tests/lua.rs, "cancellation"): for each
;; async function of componentize:lua-tests/cancellable it exports
;; `cancel-<name>`, which starts the call and, unless it returned at once,
;; cancels it with a synchronous `subtask.cancel`. The result is the
;; subtask's final state in the high 32 bits (RETURNED 2, RETURN_CANCELLED
;; 4, ...) and, when it returned, its u32 result in the low ones. The
;; interface instance is exported again, so the host reaches `take-log` and
;; `heap` through this component.
(component
  (import "componentize:lua-tests/cancellable" (instance $callee
    (export "wait" (func async (param "turns" u32) (result u32)))
    (export "stubborn" (func async (param "turns" u32) (result u32)))
    (export "listen" (func async (param "turns" u32) (result u32)))
    (export "take-log" (func (result (list string))))
    (export "heap" (func (result u64)))
  ))
  (alias export $callee "wait" (func $wait))
  (alias export $callee "stubborn" (func $stubborn))
  (alias export $callee "listen" (func $listen))

  (core module $memory (memory (export "memory") 1))
  (core instance $memory (instantiate $memory))
  (alias core export $memory "memory" (core memory $mem))

  (core func $wait_lowered (canon lower (func $wait) async (memory $mem)))
  (core func $stubborn_lowered (canon lower (func $stubborn) async (memory $mem)))
  (core func $listen_lowered (canon lower (func $listen) async (memory $mem)))
  (core func $subtask_cancel (canon subtask.cancel))
  (core func $subtask_drop (canon subtask.drop))
  (core func $task_return (canon task.return (result u64)))

  (core module $caller
    (import "" "memory" (memory 1))
    (import "" "wait" (func $wait (param i32 i32) (result i32)))
    (import "" "stubborn" (func $stubborn (param i32 i32) (result i32)))
    (import "" "listen" (func $listen (param i32 i32) (result i32)))
    (import "" "subtask.cancel" (func $subtask_cancel (param i32) (result i32)))
    (import "" "subtask.drop" (func $subtask_drop (param i32)))
    (import "" "task.return" (func $task_return (param i64)))

    ;; The callee's result is written at this address.
    (global $result i32 (i32.const 16))

    ;; After a call started with `status`: cancels it unless it returned,
    ;; returns the outcome and ends the task (callback code EXIT).
    (func $finish (param $status i32) (result i32)
      (local $state i32)
      (local $subtask i32)
      (local.set $state (i32.and (local.get $status) (i32.const 15)))
      (if (i32.ne (local.get $state) (i32.const 2))
        (then
          (local.set $subtask (i32.shr_u (local.get $status) (i32.const 4)))
          (local.set $state (call $subtask_cancel (local.get $subtask)))
          (call $subtask_drop (local.get $subtask))))
      (call $task_return
        (i64.or
          (i64.shl (i64.extend_i32_u (local.get $state)) (i64.const 32))
          (if (result i64) (i32.eq (local.get $state) (i32.const 2))
            (then (i64.load32_u (global.get $result)))
            (else (i64.const 0)))))
      (i32.const 0))

    (func (export "cancel-wait") (param $turns i32) (result i32)
      (call $finish (call $wait (local.get $turns) (global.get $result))))
    (func (export "cancel-stubborn") (param $turns i32) (result i32)
      (call $finish (call $stubborn (local.get $turns) (global.get $result))))
    (func (export "cancel-listen") (param $turns i32) (result i32)
      (call $finish (call $listen (local.get $turns) (global.get $result))))
    ;; Every export ends before it returns: no event ever comes.
    (func (export "callback") (param i32 i32 i32) (result i32) unreachable)
  )
  (core instance $caller (instantiate $caller
    (with "" (instance
      (export "memory" (memory $mem))
      (export "wait" (func $wait_lowered))
      (export "stubborn" (func $stubborn_lowered))
      (export "listen" (func $listen_lowered))
      (export "subtask.cancel" (func $subtask_cancel))
      (export "subtask.drop" (func $subtask_drop))
      (export "task.return" (func $task_return))))))

  (func (export "cancel-wait") async (param "turns" u32) (result u64)
    (canon lift (core func $caller "cancel-wait") async (callback (core func $caller "callback"))))
  (func (export "cancel-stubborn") async (param "turns" u32) (result u64)
    (canon lift (core func $caller "cancel-stubborn") async (callback (core func $caller "callback"))))
  (func (export "cancel-listen") async (param "turns" u32) (result u64)
    (canon lift (core func $caller "cancel-listen") async (callback (core func $caller "callback"))))
  (export "componentize:lua-tests/cancellable" (instance $callee))
)
