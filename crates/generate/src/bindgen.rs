//! Per-function code: the bodies of import adapters, exports, post-returns,
//! resource destructors and the per-type memory helpers, as calls to the
//! interpreter's push/pop interface.
//!
//! Values sit either in flat wasm locals ([`Loc::Flat`], canonical ABI
//! flattening, variant payloads joined) or in linear memory ([`Loc::Mem`],
//! canonical ABI layout). Flat values are handled inline. Compound values in
//! memory go through one helper function per type and direction
//! (`(cx, addr) -> ()`), shared by every function and list loop that needs
//! it, which keeps the module small for worlds that reuse types.

use crate::abi::{Intrinsic, flat, val_type};
use crate::builder::{Helper, ModuleBuilder};
use crate::plan::{Plan, Side, async_area_types};
use wasm_encoder::{BlockType, Function, InstructionSink, MemArg, ValType};
use wit_parser::abi::WasmSignature;
use wit_parser::{FlagsRepr, Handle, Int, Resolve, Type, TypeDefKind};

/// A wasm local and its type.
#[derive(Clone, Copy)]
struct Local {
    idx: u32,
    ty: ValType,
}

/// Where a value lives.
#[derive(Clone)]
enum Loc {
    /// In flat locals (canonical ABI flattening).
    Flat(Vec<Local>),
    /// In memory at local `addr` + `offset` (canonical ABI layout).
    Mem { addr: u32, offset: u32 },
}

impl Loc {
    /// In memory at the address held by `local`.
    fn at(local: Local) -> Loc {
        Loc::Mem {
            addr: local.idx,
            offset: 0,
        }
    }
}

/// A scalar's memory access and its push and pop intrinsics.
#[derive(Clone, Copy)]
struct Scalar {
    access: Access,
    push: Intrinsic,
    pop: Intrinsic,
}

impl Scalar {
    fn of(ty: &Type) -> Option<Scalar> {
        use Intrinsic as I;
        let (access, push, pop) = match ty {
            Type::Bool => (Access::U8, I::PushBool, I::PopBool),
            Type::U8 => (Access::U8, I::PushU8, I::PopU8),
            Type::S8 => (Access::S8, I::PushS8, I::PopS8),
            Type::U16 => (Access::U16, I::PushU16, I::PopU16),
            Type::S16 => (Access::S16, I::PushS16, I::PopS16),
            Type::U32 => (Access::I32, I::PushU32, I::PopU32),
            Type::S32 => (Access::I32, I::PushS32, I::PopS32),
            Type::U64 => (Access::I64, I::PushU64, I::PopU64),
            Type::S64 => (Access::I64, I::PushS64, I::PopS64),
            Type::F32 => (Access::F32, I::PushF32, I::PopF32),
            Type::F64 => (Access::F64, I::PushF64, I::PopF64),
            Type::Char => (Access::I32, I::PushChar, I::PopChar),
            Type::String | Type::ErrorContext | Type::Id(_) => return None,
        };
        Some(Scalar { access, push, pop })
    }
}

/// How a scalar is read from or written to memory.
#[derive(Clone, Copy)]
enum Access {
    U8,
    S8,
    U16,
    S16,
    I32,
    I64,
    F32,
    F64,
}

impl Access {
    fn natural(self) -> ValType {
        match self {
            Access::I64 => ValType::I64,
            Access::F32 => ValType::F32,
            Access::F64 => ValType::F64,
            _ => ValType::I32,
        }
    }

    fn for_int(int: Int) -> Access {
        match int {
            Int::U8 => Access::U8,
            Int::U16 => Access::U16,
            Int::U32 => Access::I32,
            Int::U64 => Access::I64,
        }
    }
}

fn memarg(offset: u32, align: u32) -> MemArg {
    MemArg {
        offset: offset.into(),
        align,
        target: wasm_encoder::MemArgTarget::Memory(0),
        ordering: None,
    }
}

/// A compound type's cases, for variants, options and results alike.
struct Cases {
    tag: Int,
    types: Vec<Option<Type>>,
}

/// Generates one function body.
struct Emitter<'p, 'a> {
    plan: &'p Plan<'a>,
    module: &'p mut ModuleBuilder,
    side: Side,
    code: Vec<u8>,
    nparams: u32,
    locals: Vec<ValType>,
    free: Vec<Local>,
    cx: u32,
    /// Address of a 4-byte scratch slot (`fp` local + offset) for the
    /// out-pointer of `pop_string`/`pop_list` when the destination is flat.
    temp: Option<(u32, u32)>,
}

impl<'p, 'a> Emitter<'p, 'a> {
    fn new(plan: &'p Plan<'a>, module: &'p mut ModuleBuilder, side: Side, params: u32) -> Self {
        Emitter {
            plan,
            module,
            side,
            code: Vec::new(),
            nparams: params,
            locals: Vec::new(),
            free: Vec::new(),
            cx: 0,
            temp: None,
        }
    }

    fn set_cx(&mut self, local: u32) {
        self.cx = local;
    }

    fn set_temp(&mut self, fp: u32, offset: u32) {
        self.temp = Some((fp, offset));
    }

    fn ins(&mut self) -> InstructionSink<'_> {
        InstructionSink::new(&mut self.code)
    }

    fn local(&mut self, ty: ValType) -> Local {
        if let Some(pos) = self.free.iter().position(|l| l.ty == ty) {
            return self.free.swap_remove(pos);
        }
        self.locals.push(ty);
        Local {
            idx: self.nparams + self.locals.len() as u32 - 1,
            ty,
        }
    }

    fn release(&mut self, local: Local) {
        self.free.push(local);
    }

    fn call(&mut self, i: Intrinsic) {
        let index = self.module.intrinsic(i);
        self.ins().call(index);
    }

    fn get_cx(&mut self) {
        let cx = self.cx;
        self.ins().local_get(cx);
    }

    /// Pushes `addr + offset`.
    fn address(&mut self, addr: u32, offset: u32) {
        self.ins().local_get(addr);
        if offset != 0 {
            self.ins().i32_const(offset as i32);
            self.ins().i32_add();
        }
    }

    fn finish(mut self) -> Function {
        self.ins().end();
        let mut f = Function::new_with_locals_types(self.locals);
        f.raw(self.code);
        f
    }

    fn resolve(&self) -> &'a Resolve {
        self.plan.resolve
    }

    fn index(&self, ty: &Type) -> i32 {
        self.plan.code(self.side, ty).index() as i32
    }

    /// Splits a location into consecutive fields.
    fn fields(&self, loc: &Loc, types: &[Type]) -> Vec<Loc> {
        match loc {
            Loc::Flat(locals) => {
                let mut rest = &locals[..];
                types
                    .iter()
                    .map(|t| {
                        let n = flat(self.resolve(), t).len();
                        let (now, later) = rest.split_at(n);
                        rest = later;
                        Loc::Flat(now.to_vec())
                    })
                    .collect()
            }
            Loc::Mem { addr, offset } => self
                .plan
                .sizes
                .field_offsets(types)
                .into_iter()
                .map(|(off, _)| Loc::Mem {
                    addr: *addr,
                    offset: offset + off.size_wasm32() as u32,
                })
                .collect(),
        }
    }

    /// Pushes a scalar read from `loc` as its natural wasm type.
    fn load(&mut self, loc: &Loc, access: Access) {
        match loc {
            Loc::Flat(locals) => {
                let l = locals[0];
                self.ins().local_get(l.idx);
                convert(&mut self.ins(), l.ty, access.natural());
            }
            Loc::Mem { addr, offset } => {
                let (addr, offset) = (*addr, *offset);
                self.ins().local_get(addr);
                let mut i = self.ins();
                match access {
                    Access::U8 => i.i32_load8_u(memarg(offset, 0)),
                    Access::S8 => i.i32_load8_s(memarg(offset, 0)),
                    Access::U16 => i.i32_load16_u(memarg(offset, 1)),
                    Access::S16 => i.i32_load16_s(memarg(offset, 1)),
                    Access::I32 => i.i32_load(memarg(offset, 2)),
                    Access::I64 => i.i64_load(memarg(offset, 3)),
                    Access::F32 => i.f32_load(memarg(offset, 2)),
                    Access::F64 => i.f64_load(memarg(offset, 3)),
                };
            }
        }
    }

    /// Stores a scalar to `loc`: `value` emits the natural-typed value.
    fn store(&mut self, loc: &Loc, access: Access, value: impl FnOnce(&mut Self)) {
        match loc {
            Loc::Flat(locals) => {
                let l = locals[0];
                value(self);
                convert(&mut self.ins(), access.natural(), l.ty);
                self.ins().local_set(l.idx);
            }
            Loc::Mem { addr, offset } => {
                let (addr, offset) = (*addr, *offset);
                self.ins().local_get(addr);
                value(self);
                let mut i = self.ins();
                match access {
                    Access::U8 | Access::S8 => i.i32_store8(memarg(offset, 0)),
                    Access::U16 | Access::S16 => i.i32_store16(memarg(offset, 1)),
                    Access::I32 => i.i32_store(memarg(offset, 2)),
                    Access::I64 => i.i64_store(memarg(offset, 3)),
                    Access::F32 => i.f32_store(memarg(offset, 2)),
                    Access::F64 => i.f64_store(memarg(offset, 3)),
                };
            }
        }
    }

    /// Lifts the value of type `ty` at `loc` and pushes it onto the
    /// interpreter's stack. Compound values in memory are delegated to their
    /// helper unless `expand` (the helper's own body).
    fn lift(&mut self, ty: &Type, loc: &Loc, expand: bool) {
        if let Some(scalar) = Scalar::of(ty) {
            self.get_cx();
            self.load(loc, scalar.access);
            self.call(scalar.push);
            return;
        }
        match ty {
            Type::String => {
                let parts = self.fields(loc, &[Type::U32, Type::U32]);
                self.get_cx();
                self.load(&parts[0], Access::I32);
                self.load(&parts[1], Access::I32);
                self.call(Intrinsic::PushString);
            }
            Type::Id(id) => {
                let kind = &self.resolve().types[*id].kind;
                if !self.call_helper(Helper::Lift, ty, kind, loc, expand) {
                    self.lift_def(ty, kind, loc);
                }
            }
            // Scalars are handled above; `error-context` is refused by the plan.
            _ => unreachable!("refused by the plan"),
        }
    }

    /// Calls the shared helper for a compound value in memory (unless
    /// `expand`: the helper's own body); false when `ty` is handled inline.
    fn call_helper(
        &mut self,
        dir: Helper,
        ty: &Type,
        kind: &TypeDefKind,
        loc: &Loc,
        expand: bool,
    ) -> bool {
        let Loc::Mem { addr, offset } = *loc else {
            return false;
        };
        if expand || !is_compound(kind) {
            return false;
        }
        let helper = self.module.helper(self.plan, dir, self.side, *ty);
        self.get_cx();
        self.address(addr, offset);
        self.ins().call(helper);
        true
    }

    fn lift_def(&mut self, ty: &Type, kind: &TypeDefKind, loc: &Loc) {
        use Intrinsic as I;
        let index = self.index(ty);
        match kind {
            TypeDefKind::Type(t) => self.lift(t, loc, false),
            TypeDefKind::Record(r) => {
                let types: Vec<Type> = r.fields.iter().map(|f| f.ty).collect();
                self.lift_all(&types, loc);
                self.push_indexed(I::PushRecord, index);
            }
            TypeDefKind::Tuple(t) => {
                self.lift_all(&t.types, loc);
                self.push_indexed(I::PushTuple, index);
            }
            TypeDefKind::Flags(f) => {
                self.get_cx();
                self.ins().i32_const(index);
                match flags_access(f.repr()) {
                    Some(access) => self.load(loc, access),
                    None => {
                        self.ins().i32_const(0);
                    }
                }
                self.call(I::PushFlags);
            }
            TypeDefKind::Enum(e) => {
                self.get_cx();
                self.ins().i32_const(index);
                self.load(loc, Access::for_int(e.tag()));
                self.call(I::PushEnum);
            }
            TypeDefKind::Handle(_) | TypeDefKind::Future(_) | TypeDefKind::Stream(_) => {
                let (push, _) = handle_intrinsics(kind);
                self.get_cx();
                self.ins().i32_const(index);
                self.load(loc, Access::I32);
                self.call(push);
            }
            TypeDefKind::Variant(_) | TypeDefKind::Option(_) | TypeDefKind::Result(_) => {
                let (cases, push, _) = cases(kind);
                self.lift_cases(&cases, loc, push, index);
            }
            TypeDefKind::List(elem) => self.lift_list(std::slice::from_ref(elem), loc, index),
            TypeDefKind::Map(k, v) => self.lift_list(&[*k, *v], loc, index),
            // Resources are only reached through handles; the rest is refused
            // by the plan.
            other => unreachable!("`{}` is refused by the plan", other.as_str()),
        }
    }

    fn lift_all(&mut self, types: &[Type], loc: &Loc) {
        for (t, l) in types.iter().zip(self.fields(loc, types)) {
            self.lift(t, &l, false);
        }
    }

    fn push_indexed(&mut self, i: Intrinsic, index: i32) {
        self.get_cx();
        self.ins().i32_const(index);
        self.call(i);
    }

    /// Where the discriminant and each case's payload live.
    fn case_locs(&self, cases: &Cases, loc: &Loc) -> (Loc, Vec<Loc>, Vec<Local>) {
        match loc {
            Loc::Flat(locals) => {
                let payload = locals[1..].to_vec();
                let locs = cases
                    .types
                    .iter()
                    .map(|t| {
                        let n = t.as_ref().map_or(0, |t| flat(self.resolve(), t).len());
                        Loc::Flat(payload[..n].to_vec())
                    })
                    .collect();
                (Loc::Flat(vec![locals[0]]), locs, payload)
            }
            Loc::Mem { addr, offset } => {
                let off = self
                    .plan
                    .sizes
                    .payload_offset(cases.tag, cases.types.iter().map(|t| t.as_ref()))
                    .size_wasm32() as u32;
                let payload = Loc::Mem {
                    addr: *addr,
                    offset: offset + off,
                };
                (
                    Loc::Mem {
                        addr: *addr,
                        offset: *offset,
                    },
                    vec![payload; cases.types.len()],
                    Vec::new(),
                )
            }
        }
    }

    /// Emits a branch per case: `body(self, case)` for each, dispatching on
    /// the i32 in `discr`. Two cases branch on zero/non-zero (as the
    /// canonical ABI treats bool-like discriminants); more use `br_table`
    /// and trap on an out-of-range discriminant.
    fn dispatch(&mut self, n: usize, discr: Local, mut body: impl FnMut(&mut Self, usize)) {
        match n {
            1 => body(self, 0),
            2 => {
                self.ins().local_get(discr.idx);
                self.ins().if_(BlockType::Empty);
                body(self, 1);
                self.ins().else_();
                body(self, 0);
                self.ins().end();
            }
            _ => {
                // block $done { block $trap { block $c(n-1) ... { block $c0 {
                //   br_table } case0; br $done } case1; br $done } ... } unreachable }
                self.ins().block(BlockType::Empty);
                self.ins().block(BlockType::Empty);
                for _ in 0..n {
                    self.ins().block(BlockType::Empty);
                }
                self.ins().local_get(discr.idx);
                let targets: Vec<u32> = (0..n as u32).collect();
                self.ins().br_table(targets, n as u32);
                for case in 0..n {
                    self.ins().end();
                    body(self, case);
                    // Remaining: blocks of later cases, $trap, $done.
                    self.ins().br((n - 1 - case) as u32 + 1);
                }
                self.ins().end();
                self.ins().unreachable();
                self.ins().end();
            }
        }
    }

    fn lift_cases(&mut self, cases: &Cases, loc: &Loc, push: Intrinsic, index: i32) {
        let (discr_loc, payloads, _) = self.case_locs(cases, loc);
        let discr = self.local(ValType::I32);
        self.load(&discr_loc, Access::for_int(cases.tag));
        self.ins().local_set(discr.idx);
        self.dispatch(cases.types.len(), discr, |me, case| {
            if let Some(t) = &cases.types[case] {
                me.lift(t, &payloads[case], false);
            }
            me.get_cx();
            me.ins().i32_const(index);
            me.ins().i32_const(case as i32);
            me.call(push);
        });
        self.release(discr);
    }

    /// Lists (one element type) and maps (key and value types).
    fn lift_list(&mut self, elem: &[Type], loc: &Loc, index: i32) {
        use Intrinsic as I;
        let is_map = elem.len() == 2;
        let ListParts {
            size,
            align,
            parts,
            ptr,
            len,
        } = self.list_parts(elem, loc);
        self.load(&parts[0], Access::I32);
        self.ins().local_set(ptr.idx);
        self.load(&parts[1], Access::I32);
        self.ins().local_set(len.idx);

        self.get_cx();
        self.ins().i32_const(index);
        if is_map {
            self.ins().local_get(len.idx);
            self.call(I::PushMap);
        } else {
            self.ins().local_get(ptr.idx);
            self.ins().local_get(len.idx);
            self.call(I::PushList);
            // `true`: the interpreter took the canonical buffer as is.
            self.ins().i32_eqz();
            self.ins().if_(BlockType::Empty);
        }
        let append = if is_map { I::MapAppend } else { I::ListAppend };
        self.each_element(ptr, len, size, |me, at| {
            me.lift_all(elem, &Loc::at(at));
            me.push_indexed(append, index);
        });
        if size != 0 {
            // Elements were copied out one by one: free the buffer now.
            self.ins().local_get(len.idx);
            self.ins().if_(BlockType::Empty);
            self.get_cx();
            self.ins().local_get(ptr.idx);
            self.ins().local_get(len.idx);
            self.ins().i32_const(size as i32);
            self.ins().i32_mul();
            self.ins().i32_const(align as i32);
            self.ins().i32_const(0);
            self.call(I::DeallocBytes);
            self.ins().end();
        }
        if !is_map {
            self.ins().end();
        }
        self.release(ptr);
        self.release(len);
    }

    /// The element layout of a list (one element type) or map (key and
    /// value types), the locations of its pointer and length, and fresh
    /// locals for them.
    fn list_parts(&mut self, elem: &[Type], loc: &Loc) -> ListParts {
        let layout = self.plan.sizes.record(elem);
        let parts = self.fields(loc, &[Type::U32, Type::U32]);
        let ptr = self.local(ValType::I32);
        let len = self.local(ValType::I32);
        ListParts {
            size: layout.size.size_wasm32() as u32,
            align: layout.align.align_wasm32() as u32,
            parts,
            ptr,
            len,
        }
    }

    /// Runs `body` with a local holding each element's address in turn.
    fn each_element(
        &mut self,
        ptr: Local,
        len: Local,
        size: u32,
        body: impl FnOnce(&mut Self, Local),
    ) {
        let at = self.local(ValType::I32);
        let left = self.local(ValType::I32);
        self.ins().local_get(ptr.idx);
        self.ins().local_set(at.idx);
        self.ins().local_get(len.idx);
        self.ins().local_set(left.idx);
        self.ins().block(BlockType::Empty);
        self.ins().loop_(BlockType::Empty);
        self.ins().local_get(left.idx);
        self.ins().i32_eqz();
        self.ins().br_if(1);
        body(self, at);
        self.ins().local_get(at.idx);
        self.ins().i32_const(size as i32);
        self.ins().i32_add();
        self.ins().local_set(at.idx);
        self.ins().local_get(left.idx);
        self.ins().i32_const(1);
        self.ins().i32_sub();
        self.ins().local_set(left.idx);
        self.ins().br(0);
        self.ins().end();
        self.ins().end();
        self.release(at);
        self.release(left);
    }

    /// Pops a value of type `ty` from the interpreter and writes it to `loc`.
    fn lower(&mut self, ty: &Type, loc: &Loc, expand: bool) {
        if let Some(scalar) = Scalar::of(ty) {
            self.store(loc, scalar.access, |me| {
                me.get_cx();
                me.call(scalar.pop);
            });
            return;
        }
        match ty {
            Type::String => {
                let parts = self.fields(loc, &[Type::U32, Type::U32]);
                self.lower_with_out_ptr(&parts, |me, out| {
                    me.get_cx();
                    out(me);
                    me.call(Intrinsic::PopString);
                });
            }
            Type::Id(id) => {
                let kind = &self.resolve().types[*id].kind;
                if !self.call_helper(Helper::Lower, ty, kind, loc, expand) {
                    self.lower_def(ty, kind, loc);
                }
            }
            // Scalars are handled above; `error-context` is refused by the plan.
            _ => unreachable!("refused by the plan"),
        }
    }

    /// For `pop_string`/`pop_list`: `call` pushes the length, having been
    /// given (through `out`) an address where the interpreter writes the
    /// pointer. In memory that is the destination's pointer field itself; in
    /// flat locals it is the frame's scratch slot.
    fn lower_with_out_ptr(
        &mut self,
        parts: &[Loc],
        call: impl FnOnce(&mut Self, &dyn Fn(&mut Self)),
    ) {
        match &parts[0] {
            Loc::Mem { addr, offset } => {
                let (addr, offset) = (*addr, *offset);
                self.store(&parts[1], Access::I32, |me| {
                    call(me, &|me: &mut Self| me.address(addr, offset));
                });
            }
            Loc::Flat(_) => {
                let (fp, off) = self
                    .temp
                    .expect("flat string/list lowering has a scratch slot");
                self.store(&parts[1], Access::I32, |me| {
                    call(me, &|me: &mut Self| me.address(fp, off));
                });
                self.store(&parts[0], Access::I32, |me| {
                    me.ins().local_get(fp);
                    me.ins().i32_load(memarg(off, 2));
                });
            }
        }
    }

    fn lower_def(&mut self, ty: &Type, kind: &TypeDefKind, loc: &Loc) {
        use Intrinsic as I;
        let index = self.index(ty);
        match kind {
            TypeDefKind::Type(t) => self.lower(t, loc, false),
            TypeDefKind::Record(r) => {
                self.push_indexed(I::PopRecord, index);
                let types: Vec<Type> = r.fields.iter().map(|f| f.ty).collect();
                self.lower_all(&types, loc);
            }
            TypeDefKind::Tuple(t) => {
                self.push_indexed(I::PopTuple, index);
                self.lower_all(&t.types, loc);
            }
            TypeDefKind::Flags(f) => match flags_access(f.repr()) {
                Some(access) => self.store(loc, access, |me| me.push_indexed(I::PopFlags, index)),
                None => {
                    self.push_indexed(I::PopFlags, index);
                    self.ins().drop();
                }
            },
            TypeDefKind::Enum(e) => self.store(loc, Access::for_int(e.tag()), |me| {
                me.push_indexed(I::PopEnum, index)
            }),
            TypeDefKind::Handle(_) | TypeDefKind::Future(_) | TypeDefKind::Stream(_) => {
                let (_, pop) = handle_intrinsics(kind);
                self.store(loc, Access::I32, |me| me.push_indexed(pop, index));
            }
            TypeDefKind::Variant(_) | TypeDefKind::Option(_) | TypeDefKind::Result(_) => {
                let (cases, _, pop) = cases(kind);
                self.lower_cases(&cases, loc, pop, index);
            }
            TypeDefKind::List(elem) => self.lower_list(std::slice::from_ref(elem), loc, index),
            TypeDefKind::Map(k, v) => self.lower_list(&[*k, *v], loc, index),
            // Resources are only reached through handles; the rest is refused
            // by the plan.
            other => unreachable!("`{}` is refused by the plan", other.as_str()),
        }
    }

    fn lower_all(&mut self, types: &[Type], loc: &Loc) {
        for (t, l) in types.iter().zip(self.fields(loc, types)) {
            self.lower(t, &l, false);
        }
    }

    fn lower_cases(&mut self, cases: &Cases, loc: &Loc, pop: Intrinsic, index: i32) {
        let (discr_loc, payloads, all_payload) = self.case_locs(cases, loc);
        let discr = self.local(ValType::I32);
        self.push_indexed(pop, index);
        if cases.types.len() == 2 {
            // Bool-like: any non-zero answer means the second case.
            self.ins().i32_const(0);
            self.ins().i32_ne();
        }
        self.ins().local_set(discr.idx);
        self.store(&discr_loc, Access::for_int(cases.tag), |me| {
            me.ins().local_get(discr.idx);
        });
        self.dispatch(cases.types.len(), discr, |me, case| {
            let used = match (&cases.types[case], &payloads[case]) {
                (Some(t), l) => {
                    me.lower(t, l, false);
                    if let Loc::Flat(ls) = l { ls.len() } else { 0 }
                }
                (None, _) => 0,
            };
            // Flat payload slots this case does not use are zeroed, so the
            // call's arguments never depend on stale locals.
            for l in &all_payload[used..] {
                zero(&mut me.ins(), l.ty);
                me.ins().local_set(l.idx);
            }
        });
        self.release(discr);
    }

    fn lower_list(&mut self, elem: &[Type], loc: &Loc, index: i32) {
        use Intrinsic as I;
        let is_map = elem.len() == 2;
        let ListParts {
            size,
            align,
            parts,
            ptr,
            len,
        } = self.list_parts(elem, loc);
        if is_map {
            self.push_indexed(I::PopMap, index);
            self.ins().local_set(len.idx);
            self.ins().i32_const(0);
            self.ins().local_set(ptr.idx);
        } else {
            // The interpreter either writes a pointer to data already in
            // canonical layout, or NULL and then yields elements one by one.
            let out = match &parts[0] {
                Loc::Mem { addr, offset } => (*addr, *offset),
                Loc::Flat(_) => self.temp.expect("flat list lowering has a scratch slot"),
            };
            self.get_cx();
            self.ins().i32_const(index);
            self.address(out.0, out.1);
            self.call(I::PopList);
            self.ins().local_set(len.idx);
            self.ins().local_get(out.0);
            self.ins().i32_load(memarg(out.1, 2));
            self.ins().local_set(ptr.idx);
        }
        self.ins().local_get(ptr.idx);
        self.ins().i32_eqz();
        self.ins().if_(BlockType::Empty);
        {
            let bytes = self.local(ValType::I32);
            self.ins().local_get(len.idx);
            self.ins().i32_const(size as i32);
            self.ins().i32_mul();
            self.ins().local_tee(bytes.idx);
            // An empty list needs no allocation, only an aligned pointer.
            self.ins().if_(BlockType::Result(ValType::I32));
            self.ins().i32_const(0);
            self.ins().i32_const(0);
            self.ins().i32_const(align as i32);
            self.ins().local_get(bytes.idx);
            self.call(I::CabiRealloc);
            self.ins().else_();
            self.ins().i32_const(align as i32);
            self.ins().end();
            self.ins().local_set(ptr.idx);
            let next = if is_map {
                I::PopMapIterNext
            } else {
                I::PopListIterNext
            };
            self.each_element(ptr, len, size, |me, at| {
                me.push_indexed(next, index);
                me.lower_all(elem, &Loc::at(at));
            });
            // The buffer must outlive this call: the interpreter frees it
            // when the call's context ends.
            self.ins().local_get(bytes.idx);
            self.ins().if_(BlockType::Empty);
            self.get_cx();
            self.ins().local_get(ptr.idx);
            self.ins().local_get(bytes.idx);
            self.ins().i32_const(align as i32);
            self.ins().i32_const(1);
            self.call(I::DeallocBytes);
            self.ins().end();
            let done = if is_map {
                I::PopMapIter
            } else {
                I::PopListIter
            };
            self.push_indexed(done, index);
            self.release(bytes);
        }
        self.ins().end();
        self.store(&parts[0], Access::I32, |me| {
            me.ins().local_get(ptr.idx);
        });
        self.store(&parts[1], Access::I32, |me| {
            me.ins().local_get(len.idx);
        });
        self.release(ptr);
        self.release(len);
    }
}

/// See [`Emitter::list_parts`].
struct ListParts {
    size: u32,
    align: u32,
    parts: Vec<Loc>,
    ptr: Local,
    len: Local,
}

/// The push and pop intrinsics of a handle: of a resource, a future or a
/// stream (each one `i32` in the canonical ABI).
fn handle_intrinsics(kind: &TypeDefKind) -> (Intrinsic, Intrinsic) {
    match kind {
        TypeDefKind::Handle(Handle::Own(_)) => (Intrinsic::PushOwn, Intrinsic::PopOwn),
        TypeDefKind::Handle(Handle::Borrow(_)) => (Intrinsic::PushBorrow, Intrinsic::PopBorrow),
        TypeDefKind::Future(_) => (Intrinsic::PushFuture, Intrinsic::PopFuture),
        TypeDefKind::Stream(_) => (Intrinsic::PushStream, Intrinsic::PopStream),
        other => unreachable!("`{}` is no handle", other.as_str()),
    }
}

/// Types whose memory form is handled by a shared helper function.
fn is_compound(kind: &TypeDefKind) -> bool {
    matches!(
        kind,
        TypeDefKind::Record(_)
            | TypeDefKind::Tuple(_)
            | TypeDefKind::Variant(_)
            | TypeDefKind::Option(_)
            | TypeDefKind::Result(_)
            | TypeDefKind::List(_)
            | TypeDefKind::Map(..)
    )
}

/// The cases of a variant, option or result, and its push and pop
/// intrinsics.
fn cases(kind: &TypeDefKind) -> (Cases, Intrinsic, Intrinsic) {
    match kind {
        TypeDefKind::Variant(v) => (
            Cases {
                tag: v.tag(),
                types: v.cases.iter().map(|c| c.ty).collect(),
            },
            Intrinsic::PushVariant,
            Intrinsic::PopVariant,
        ),
        TypeDefKind::Option(t) => (
            Cases {
                tag: Int::U8,
                types: vec![None, Some(*t)],
            },
            Intrinsic::PushOption,
            Intrinsic::PopOption,
        ),
        TypeDefKind::Result(r) => (
            Cases {
                tag: Int::U8,
                types: vec![r.ok, r.err],
            },
            Intrinsic::PushResult,
            Intrinsic::PopResult,
        ),
        other => unreachable!("`{}` has no cases", other.as_str()),
    }
}

fn flags_access(repr: FlagsRepr) -> Option<Access> {
    match repr {
        FlagsRepr::U8 => Some(Access::U8),
        FlagsRepr::U16 => Some(Access::U16),
        FlagsRepr::U32(0) => None,
        FlagsRepr::U32(_) => Some(Access::I32),
    }
}

/// Converts the value on top of the wasm stack between a flat slot's type
/// and a value's natural type (variant payloads share joined slots).
fn convert(i: &mut InstructionSink<'_>, from: ValType, to: ValType) {
    use ValType::*;
    match (from, to) {
        (a, b) if a == b => {}
        (I64, I32) => {
            i.i32_wrap_i64();
        }
        (I32, I64) => {
            i.i64_extend_i32_u();
        }
        (I32, F32) => {
            i.f32_reinterpret_i32();
        }
        (F32, I32) => {
            i.i32_reinterpret_f32();
        }
        (I64, F32) => {
            i.i32_wrap_i64().f32_reinterpret_i32();
        }
        (F32, I64) => {
            i.i32_reinterpret_f32().i64_extend_i32_u();
        }
        (I64, F64) => {
            i.f64_reinterpret_i64();
        }
        (F64, I64) => {
            i.i64_reinterpret_f64();
        }
        (a, b) => unreachable!("no canonical ABI join between {a:?} and {b:?}"),
    }
}

fn zero(i: &mut InstructionSink<'_>, ty: ValType) {
    match ty {
        ValType::I32 => i.i32_const(0),
        ValType::I64 => i.i64_const(0),
        ValType::F32 => i.f32_const(0.0.into()),
        ValType::F64 => i.f64_const(0.0.into()),
        _ => unreachable!(),
    };
}

/// Whether lowering `ty` into flat locals needs the scratch slot.
fn needs_scratch(resolve: &Resolve, ty: &Type) -> bool {
    match ty {
        Type::String => true,
        Type::Id(id) => match &resolve.types[*id].kind {
            TypeDefKind::List(_) | TypeDefKind::Map(..) => true,
            TypeDefKind::Type(t) | TypeDefKind::Option(t) => needs_scratch(resolve, t),
            TypeDefKind::Record(r) => r.fields.iter().any(|f| needs_scratch(resolve, &f.ty)),
            TypeDefKind::Tuple(t) => t.types.iter().any(|t| needs_scratch(resolve, t)),
            TypeDefKind::Variant(v) => v
                .cases
                .iter()
                .filter_map(|c| c.ty.as_ref())
                .any(|t| needs_scratch(resolve, t)),
            TypeDefKind::Result(r) => {
                r.ok.iter()
                    .chain(r.err.iter())
                    .any(|t| needs_scratch(resolve, t))
            }
            _ => false,
        },
        _ => false,
    }
}

/// `adapter f`: the import adapter of world import `i`. Synchronous:
/// `(cx) -> ()`, popping the arguments, calling the host and pushing the
/// result. Asynchronous: `(cx, area) -> status`, popping the arguments into
/// `area` (or flat), starting the call with the results due in `area`, and
/// returning the subtask status for the interpreter to wait on.
pub fn import_adapter(plan: &Plan<'_>, m: &mut ModuleBuilder, i: usize) -> Function {
    let import = &plan.imports[i];
    let func = import.func;
    let sig = import.signature(plan.resolve);
    let params: Vec<Type> = func.params.iter().map(|p| p.ty).collect();
    let host = m.host_import(import.import);
    let call = LoweredCall {
        side: Side::Import,
        params: &params,
        result: func.result,
        sig: &sig,
        host,
        area: import.is_async.then(|| AsyncArea::of(plan, i)),
    };
    lowered_call(plan, m, call)
}

/// `lift results f`: `(cx, area) -> ()`, pushing the result an async import
/// left in `area` once its subtask returned.
pub fn lift_results(plan: &Plan<'_>, m: &mut ModuleBuilder, i: usize) -> Function {
    let area = AsyncArea::of(plan, i);
    let mut e = Emitter::new(plan, m, Side::Import, 2);
    e.set_cx(0);
    if let (Some(result), Some(offset)) = (plan.imports[i].func.result, area.result) {
        e.lift(&result, &Loc::Mem { addr: 1, offset }, false);
    }
    e.finish()
}

/// `task.return f`: `(cx) -> ()` for async export `which`, popping the
/// result and handing it to the canonical `task.return`, the way an import
/// adapter hands arguments to the host.
pub fn task_return(plan: &Plan<'_>, m: &mut ModuleBuilder, which: usize) -> Function {
    let export = &plan.exports[which];
    let func = export.func;
    let (.., sig) = func.task_return_import(
        plan.resolve,
        export.key,
        crate::abi::mangling(true).mangling(),
    );
    let host = m.host_import(export.task_return.expect("an async export"));
    let params: Vec<Type> = func.result.into_iter().collect();
    let call = LoweredCall {
        side: export.side,
        params: &params,
        result: None,
        sig: &sig,
        host,
        area: None,
    };
    lowered_call(plan, m, call)
}

/// Where the parameters (when indirect) and the result of an async import
/// live in the area its caller provides: the offsets in `wit_t`'s
/// `async_abi_area_size`/`align` record.
#[derive(Clone, Copy)]
struct AsyncArea {
    params: Option<u32>,
    result: Option<u32>,
}

impl AsyncArea {
    fn of(plan: &Plan<'_>, i: usize) -> AsyncArea {
        let import = &plan.imports[i];
        let types = async_area_types(plan.resolve, import);
        let offsets: Vec<u32> = plan
            .sizes
            .field_offsets(&types)
            .into_iter()
            .map(|(off, _)| off.size_wasm32() as u32)
            .collect();
        let indirect = import.signature(plan.resolve).indirect_params;
        AsyncArea {
            params: indirect.then_some(0),
            result: import.func.result.map(|_| *offsets.last().unwrap()),
        }
    }
}

/// Where a lowered call's memory area is: in its shadow-stack frame or in
/// the long-lived area an async call's caller provides.
#[derive(Clone, Copy)]
enum Base {
    Frame,
    Area,
}

/// A call to the host that pops its arguments from the interpreter.
struct LoweredCall<'s> {
    /// Whose types the arguments are lowered against.
    side: Side,
    params: &'s [Type],
    result: Option<Type>,
    /// The host function's core signature.
    sig: &'s WasmSignature,
    host: u32,
    /// For an async call, where its area keeps parameters and result.
    area: Option<AsyncArea>,
}

/// Pops the call's parameters, calls the host, and pushes its result.
///
/// Synchronous calls keep indirect parameters, the return area and the
/// scratch slot in a shadow-stack frame, allocated only when needed (an
/// interpreter may call imports re-entrantly while values are popped, so
/// static areas won't do). An async call (`area` given) must keep its
/// parameters and results alive after returning, so they go to the
/// caller's area (local 1) instead and only the scratch slot is framed; it
/// returns the status rather than a result.
fn lowered_call(plan: &Plan<'_>, m: &mut ModuleBuilder, call: LoweredCall<'_>) -> Function {
    let LoweredCall {
        side,
        params,
        result,
        sig,
        host,
        area,
    } = call;
    let resolve = plan.resolve;
    let scratch = !sig.indirect_params && params.iter().any(|t| needs_scratch(resolve, t));
    let mut size: u32 = if scratch { 4 } else { 0 };
    let mut reserve = |layout: wit_parser::ElementInfo| {
        let off = size.next_multiple_of(layout.align.align_wasm32() as u32);
        size = off + layout.size.size_wasm32() as u32;
        off
    };
    let (params_at, ret_at) = match area {
        Some(area) => (
            area.params.map(|off| (Base::Area, off)),
            area.result
                .filter(|_| sig.retptr)
                .map(|off| (Base::Area, off)),
        ),
        None => (
            sig.indirect_params
                .then(|| (Base::Frame, reserve(plan.sizes.record(params)))),
            sig.retptr
                .then(|| (Base::Frame, reserve(plan.sizes.record(result.iter())))),
        ),
    };
    let frame = size.next_multiple_of(16);

    let stack_pointer = m.stack_pointer;
    let mut e = Emitter::new(plan, m, side, if area.is_some() { 2 } else { 1 });
    e.set_cx(0);
    let fp = (frame > 0).then(|| {
        let fp = e.local(ValType::I32);
        stack_pointer.get(&mut e.ins());
        e.ins().i32_const(frame as i32).i32_sub().local_tee(fp.idx);
        stack_pointer.set(&mut e.ins());
        fp.idx
    });
    let base = |at: Base| match at {
        Base::Frame => fp.unwrap(),
        // The async adapter's second parameter.
        Base::Area => 1,
    };
    if scratch {
        e.set_temp(fp.unwrap(), 0);
    }
    let mut args: Vec<Local> = Vec::new();
    let loc = match params_at {
        Some((local, offset)) => Loc::Mem {
            addr: base(local),
            offset,
        },
        None => {
            let flat_params = &sig.params[..sig.params.len() - usize::from(sig.retptr)];
            args = flat_params.iter().map(|t| e.local(val_type(*t))).collect();
            Loc::Flat(args.clone())
        }
    };
    for (t, l) in params.iter().zip(e.fields(&loc, params)) {
        e.lower(t, &l, false);
    }
    if let Some((local, offset)) = params_at {
        e.address(base(local), offset);
    }
    for a in &args {
        e.ins().local_get(a.idx);
    }
    if let Some((local, offset)) = ret_at {
        e.address(base(local), offset);
    }
    e.ins().call(host);
    let status = area.map(|_| {
        let status = e.local(ValType::I32);
        e.ins().local_set(status.idx);
        status
    });
    if let (Some(result), None) = (&result, area) {
        match ret_at {
            Some((local, offset)) => e.lift(
                result,
                &Loc::Mem {
                    addr: base(local),
                    offset,
                },
                false,
            ),
            None => {
                let r = e.local(val_type(sig.results[0]));
                e.ins().local_set(r.idx);
                e.lift(result, &Loc::Flat(vec![r]), false);
            }
        }
    }
    if let Some(fp) = fp {
        e.ins().local_get(fp).i32_const(frame as i32).i32_add();
        stack_pointer.set(&mut e.ins());
    }
    if let Some(status) = status {
        e.ins().local_get(status.idx);
    }
    e.finish()
}

/// An export: lifts the arguments onto a fresh `cx` and runs the
/// interpreter. A sync export then lowers the result into flat form or the
/// static return area and keeps `cx` for the post-return (sync exports never
/// re-enter an instance, so one static area serves all of them). An async
/// export hands `cx` over with `wit_dylib_export_async_call` and returns its
/// callback code; the result leaves through `task.return` later.
pub fn export_function(
    plan: &Plan<'_>,
    m: &mut ModuleBuilder,
    which: usize,
    params: &[ValType],
    ret_area_offset: u32,
) -> Function {
    let export = &plan.exports[which];
    let resolve = plan.resolve;
    let func = export.func;
    let sig = export.signature(resolve);
    let param_types: Vec<Type> = func.params.iter().map(|p| p.ty).collect();
    let globals = m.global;
    let mut e = Emitter::new(plan, m, export.side, params.len() as u32);
    let cx = e.local(ValType::I32);
    e.ins().i32_const(which as i32);
    e.call(Intrinsic::ExportStart);
    e.ins().local_set(cx.idx);
    e.set_cx(cx.idx);
    let loc = if sig.indirect_params {
        Loc::Mem { addr: 0, offset: 0 }
    } else {
        Loc::Flat(
            params
                .iter()
                .enumerate()
                .map(|(i, ty)| Local {
                    idx: i as u32,
                    ty: *ty,
                })
                .collect(),
        )
    };
    for (t, l) in param_types.iter().zip(e.fields(&loc, &param_types)) {
        e.lift(t, &l, false);
    }
    if sig.indirect_params {
        // The caller allocated the argument record; its values now belong
        // to the interpreter, so the record itself is freed here.
        let layout = plan.sizes.record(&param_types);
        e.ins()
            .local_get(cx.idx)
            .local_get(0)
            .i32_const(layout.size.size_wasm32() as i32)
            .i32_const(layout.align.align_wasm32() as i32)
            .i32_const(0);
        e.call(Intrinsic::DeallocBytes);
    }
    e.ins().local_get(cx.idx).i32_const(which as i32);
    if export.task_return.is_some() {
        e.call(Intrinsic::ExportAsyncCall);
        return e.finish();
    }
    e.call(Intrinsic::ExportCall);
    let result = match &func.result {
        None => None,
        Some(t) if sig.retptr => {
            let area = e.local(ValType::I32);
            e.ins()
                .global_get(globals.memory_base)
                .i32_const(ret_area_offset as i32)
                .i32_add()
                .local_set(area.idx);
            e.lower(
                t,
                &Loc::Mem {
                    addr: area.idx,
                    offset: 0,
                },
                false,
            );
            Some(area)
        }
        Some(t) => {
            let r = e.local(val_type(sig.results[0]));
            e.lower(t, &Loc::Flat(vec![r]), false);
            Some(r)
        }
    };
    e.ins().local_get(cx.idx).global_set(globals.export_cx);
    if let Some(r) = result {
        e.ins().local_get(r.idx);
    }
    e.finish()
}

/// The `[callback]` of async export `which`: `(event, p1, p2) -> code`,
/// handed to the interpreter, which finds the task's state itself (with
/// `context.get`).
pub fn export_callback(m: &ModuleBuilder, which: usize) -> Function {
    let mut f = Function::new([]);
    f.instructions()
        .local_get(0)
        .local_get(1)
        .local_get(2)
        .i32_const(which as i32)
        .call(m.intrinsic(Intrinsic::ExportAsyncCallback))
        .end();
    f
}

/// The item lift or lower of future/stream payload `p`: `(cx, buffer) -> ()`.
pub fn payload(plan: &Plan<'_>, m: &mut ModuleBuilder, p: usize, dir: Helper) -> Function {
    let payload = &plan.payloads[p];
    let mut e = Emitter::new(plan, m, payload.side, 2);
    e.set_cx(0);
    let loc = Loc::Mem { addr: 1, offset: 0 };
    match dir {
        Helper::Lift => e.lift(&payload.ty, &loc, false),
        Helper::Lower => e.lower(&payload.ty, &loc, false),
    }
    e.finish()
}

/// The post-return of export `which`: ends the call's `cx` (freeing what
/// the export returned).
pub fn post_return(m: &ModuleBuilder, which: usize) -> Function {
    let mut f = Function::new([]);
    f.instructions()
        .global_get(m.global.export_cx)
        .i32_const(which as i32)
        .call(m.intrinsic(Intrinsic::ExportFinish))
        .end();
    f
}

/// The `[dtor]` of exported resource `index`: hands the rep to the
/// interpreter.
pub fn resource_dtor(m: &ModuleBuilder, index: u32) -> Function {
    let mut f = Function::new([]);
    f.instructions()
        .i32_const(index as i32)
        .local_get(0)
        .call(m.intrinsic(Intrinsic::ResourceDtor))
        .end();
    f
}

/// The constructor: hands the interpreter the metadata, which starts at
/// `__memory_base`.
pub fn call_ctors(m: &ModuleBuilder) -> Function {
    let mut f = Function::new([]);
    f.instructions()
        .global_get(m.global.memory_base)
        .call(m.intrinsic(Intrinsic::Initialize))
        .end();
    f
}

/// Generates the bodies of all declared helpers, including the helpers
/// those bodies declare.
pub fn define_helpers(plan: &Plan<'_>, m: &mut ModuleBuilder) {
    while let Some(helper) = m.next_pending_helper() {
        let mut e = Emitter::new(plan, m, helper.side, 2);
        e.set_cx(0);
        let loc = Loc::Mem { addr: 1, offset: 0 };
        match helper.dir {
            Helper::Lift => e.lift(&helper.ty, &loc, true),
            Helper::Lower => e.lower(&helper.ty, &loc, true),
        }
        let body = e.finish();
        m.define(helper.index, body);
    }
}
